# Run by the suite in a temp copy of this case (sh -eu): what git cannot store.
chmod 0750 tree/sub
