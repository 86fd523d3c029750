# Run by the suite in a temp copy of this case (sh -eu): what git cannot store.
chmod 4755 suid
chmod 2775 sgid-dir
chmod 1777 sticky
chmod 0600 private.txt
mkdir -p empty-dir empty-nested/inner
chmod 0700 empty-nested/inner
