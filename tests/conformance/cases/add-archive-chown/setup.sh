# Run by the suite in a temp copy of this case (sh -eu): what git cannot store.
tar --owner=1001 --group=1002 --numeric-owner -cf app.tar -C payload .
rm -rf payload
