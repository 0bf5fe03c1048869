// Command bench times two commands interleaved and prints min/median/max,
// the median ratio and each command's peak RSS. Used by `make bench`.
//
//	bench -n 30 -a 'sbxrun run --rm IMG true' -b 'ctr run --rm IMG {id} true'
//
// "{id}" in a command is replaced by a fresh name per run.
//
// Before the first run each command's executable leaves the page cache
// (fsync, then POSIX_FADV_DONTNEED), so that both are read from disk as an
// installed program is. Peak RSS counts the executable's mapped pages, and
// a file just written (a fresh `go build`) sits in the page cache in large
// folios that are mapped whole: on this project's VM (kernel 6.18) a fresh
// sbxrun binary peaked at 40 MB where the same file read from disk peaked
// at 25 MB, while a package's ctr, long on disk, was measured the cheap
// way.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

type result struct {
	times  []time.Duration
	maxRSS int64 // KiB
}

func main() {
	n := flag.Int("n", 30, "runs of each command")
	a := flag.String("a", "", "first command (the one measured)")
	b := flag.String("b", "", "second command (the peer)")
	an := flag.String("a-name", "a", "name of the first command")
	bn := flag.String("b-name", "b", "name of the second command")
	flag.Parse()
	if *a == "" || *b == "" {
		fmt.Fprintln(os.Stderr, "bench: -a and -b are required")
		os.Exit(2)
	}
	for _, c := range []string{*a, *b} {
		if err := evict(strings.Fields(c)[0]); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			os.Exit(1)
		}
	}
	ra, rb := &result{}, &result{}
	for i := 0; i < *n; i++ {
		// Interleave, alternating which goes first.
		first, second := []*result{ra, rb}, []string{*a, *b}
		if i%2 == 1 {
			first, second = []*result{rb, ra}, []string{*b, *a}
		}
		for j := range first {
			if err := once(first[j], second[j], i); err != nil {
				fmt.Fprintf(os.Stderr, "bench: %v\n", err)
				os.Exit(1)
			}
		}
	}
	ma, mb := report(*an, ra), report(*bn, rb)
	fmt.Printf("median ratio %s/%s: %.2f\n", *an, *bn, float64(ma)/float64(mb))
}

func once(r *result, command string, i int) error {
	command = strings.ReplaceAll(command, "{id}", fmt.Sprintf("bench-%d-%d", os.Getpid(), i))
	args := strings.Fields(command)
	cmd := exec.Command(args[0], args[1:]...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		return fmt.Errorf("%s: %v: %s", command, err, out.String())
	}
	r.times = append(r.times, elapsed)
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru.Maxrss > r.maxRSS {
		r.maxRSS = ru.Maxrss
	}
	return nil
}

// evict drops executable name's pages from the page cache.
func evict(name string) error {
	path, err := exec.LookPath(name)
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("evicting %s from the page cache: %w", path, err)
	}
	return nil
}

func report(name string, r *result) time.Duration {
	s := append([]time.Duration(nil), r.times...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	fmt.Printf("%-8s n=%d min %6.1fms  median %6.1fms  max %6.1fms  peak RSS %.1f MB\n", name, len(s),
		ms(s[0]), ms(med), ms(s[len(s)-1]), float64(r.maxRSS)/1024)
	return med
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
