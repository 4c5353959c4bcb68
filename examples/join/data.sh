#!/bin/sh
# The join example's data: the repos `stores` (/<store id>.txt: its name) and `purchases`
# (/<date>-<store id>.txt: what was bought), one commit each. Needs `herd` on PATH.
set -eu
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir "$dir/stores" "$dir/purchases"
echo "Downtown" > "$dir/stores/STORE1.txt"
echo "Airport" > "$dir/stores/STORE2.txt"
echo "Harbour" > "$dir/stores/STORE3.txt"               # no purchases: joins nothing
echo "3 apples" > "$dir/purchases/2024-01-05-STORE1.txt"
echo "1 pear" > "$dir/purchases/2024-01-06-STORE1.txt"
echo "2 lemons" > "$dir/purchases/2024-01-06-STORE2.txt"
echo "5 figs" > "$dir/purchases/2024-01-07-STORE4.txt"  # no such store: kept by outer_join
herd create-repo stores
herd create-repo purchases
herd put-file stores master / -r -f "$dir/stores/"
herd put-file purchases master / -r -f "$dir/purchases/"
