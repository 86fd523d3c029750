# Run by the suite in a temp copy of this case (sh -eu): what git cannot store.
ln original.txt hardlink.txt
mkdir -p sub
ln original.txt sub/another-link.txt
