// gothreads: the Go runtime on the guest kernel. Before main runs, the runtime has started
// OS threads (clone with CLONE_VM|CLONE_THREAD...), installed handlers for every signal,
// and set up its netpoller; this program then uses goroutines, channels, a sync.WaitGroup,
// time.Sleep and crypto/sha256, and needs asynchronous preemption (SIGURG sent with tgkill
// to a thread spinning in a loop without calls). Every line it prints is deterministic.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// chain hashes a block derived from seed `rounds` times, each round hashing the previous digest.
func chain(seed, rounds int) [32]byte {
	block := make([]byte, 4096)
	for i := range block {
		block[i] = byte(i*31 + seed*7)
	}
	sum := sha256.Sum256(block)
	for r := 1; r < rounds; r++ {
		sum = sha256.Sum256(sum[:])
	}
	return sum
}

type result struct {
	id  int
	sum [32]byte
}

// workers: goroutines send their digests on a channel; main collects them in any order.
func workers(n int) {
	results := make(chan result)
	for id := 0; id < n; id++ {
		go func(id int) { results <- result{id, chain(id, 1000)} }(id)
	}
	sums := make([][32]byte, n)
	for i := 0; i < n; i++ {
		r := <-results
		sums[r.id] = r.sum
	}
	for id, sum := range sums {
		fmt.Printf("worker %d: %s\n", id, hex.EncodeToString(sum[:8]))
	}
}

// pipeline: three stages joined by buffered channels; the sum of what comes out.
func pipeline(n int) {
	numbers := make(chan int, 4)
	squares := make(chan int, 4)
	go func() {
		for i := 1; i <= n; i++ {
			numbers <- i
		}
		close(numbers)
	}()
	go func() {
		for x := range numbers {
			squares <- x * x
		}
		close(squares)
	}()
	total := 0
	for s := range squares {
		total += s
	}
	fmt.Printf("pipeline: sum of squares 1..%d = %d\n", n, total)
}

// sleepers: goroutines sleep different times under a WaitGroup; each must have slept at least
// what it asked (the order they wake in is timing, and not printed).
func sleepers() {
	var wg sync.WaitGroup
	var mu sync.Mutex
	order := []int{}
	durations := []int{40, 10, 30, 20}
	start := time.Now()
	for i, ms := range durations {
		wg.Add(1)
		go func(i, ms int) {
			defer wg.Done()
			t := time.Now()
			time.Sleep(time.Duration(ms) * time.Millisecond)
			if time.Since(t) < time.Duration(ms)*time.Millisecond {
				fmt.Printf("sleeper %d woke early\n", i)
			}
			mu.Lock()
			order = append(order, ms)
			mu.Unlock()
		}(i, ms)
	}
	wg.Wait()
	sort.Ints(order)
	fmt.Printf("sleepers: %v woke, after at least 40ms: %v\n", order, time.Since(start) >= 40*time.Millisecond)
}

// preemption: with one P, a goroutine spinning in a loop with no calls can only give the CPU
// back through asynchronous preemption (sysmon's SIGURG with tgkill): main's sleep ends
// only if it does.
func preemption() {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	var stop int32
	var spins uint64
	done := make(chan bool)
	go func() {
		n := uint64(0)
		for atomic.LoadInt32(&stop) == 0 {
			n++
		}
		spins = n
		done <- true
	}()
	time.Sleep(20 * time.Millisecond)
	atomic.StoreInt32(&stop, 1)
	<-done
	fmt.Printf("preemption: main ran while a goroutine spun: %v\n", spins > 0)
}

func main() {
	workers(8)
	pipeline(1000)
	sleepers()
	preemption()
	fmt.Println("gothreads: all ok")
	os.Exit(0)
}
