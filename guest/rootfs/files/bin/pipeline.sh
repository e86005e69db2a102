#!/bin/busybox sh
# Pipelines, command substitution, xargs and redirections through busybox sh
# (issue 15b): run as `sh /bin/pipeline.sh` (not under /data,
# which busybox-ls and busybox-find list).
seq 1 1000 | sort -rn | head -3
lines=$(seq 1 100 | wc -l)
echo "lines: $lines"
echo "sum: $(seq 1 100 | awk '{ s += $1 } END { print s }')"
seq 1 7 | xargs echo args:
printf 'pear\napple\nfig\n' > /tmp/pipeline.in
sort < /tmp/pipeline.in > /tmp/pipeline.out
echo appended >> /tmp/pipeline.out
cat /tmp/pipeline.out
wc -l < /tmp/pipeline.out
ls /no/such/dir 2> /tmp/pipeline.err; echo "ls status $?, $(wc -l < /tmp/pipeline.err) error line"
rm /tmp/pipeline.in /tmp/pipeline.out /tmp/pipeline.err
for i in 1 2 3; do echo "loop $i"; done | sort -r
