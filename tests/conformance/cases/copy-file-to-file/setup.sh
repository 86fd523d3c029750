# Run by the suite in a temp copy of this case (sh -eu): what git cannot store.
chmod 0755 script.sh
chmod 0640 a.txt
