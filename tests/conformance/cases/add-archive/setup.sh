# Run by the suite in a temp copy of this case (sh -eu): what git cannot store.
chmod 0750 payload/dir
ln -s b.txt payload/link
chmod 4755 payload/b.txt
tar --owner=1001 --group=1002 --numeric-owner -czf app.tar.gz -C payload .
tar --owner=0 --group=0 --numeric-owner -cf plain.tar -C payload b.txt dir
echo 'just text' | gzip -n > notatar.gz
rm -rf payload
