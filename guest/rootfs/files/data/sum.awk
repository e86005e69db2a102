# Sum and count the numbers, and list the ones above 20 (busybox awk in the tests).
{ sum += $1; n++ }
$1 > 20 { big = big " " $1 }
END { printf "%d numbers, sum %d, above 20:%s\n", n, sum, big }
