// Command testsum reads `go test -json` on stdin and prints what a person
// wants from a test run: one line per package (ok or FAIL), the output of
// every failed test, and a closing "N passed, N failed, N skipped" line. It
// exits 1 when anything failed, so `make test` fails with it.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

func main() {
	passed, failed, skipped := 0, 0, 0
	broken := false
	output := map[string][]string{} // package/test -> its output lines
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		var e event
		if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &e) != nil {
			fmt.Println(line) // not an event: a build error, say
			continue
		}
		key := e.Package + "\x00" + e.Test
		switch e.Action {
		case "build-output":
			fmt.Print(e.Output) // the compiler's message, as go test prints it
		case "output":
			if e.Test == "" && (strings.HasPrefix(e.Output, "FAIL\t") || strings.HasPrefix(e.Output, "ok  \t")) {
				continue // the package's own closing line: printed below
			}
			output[key] = append(output[key], e.Output)
		case "pass", "fail", "skip":
			if e.Test == "" {
				switch e.Action {
				case "pass":
					fmt.Printf("ok  \t%s\t%.3fs\n", e.Package, e.Elapsed)
				case "fail":
					broken = true
					fmt.Print(strings.Join(output[key], ""))
					fmt.Printf("FAIL\t%s\t%.3fs\n", e.Package, e.Elapsed)
				}
				delete(output, key)
				continue
			}
			switch e.Action {
			case "pass":
				passed++
			case "skip":
				skipped++
			case "fail":
				failed++
				fmt.Print(strings.Join(output[key], ""))
			}
			delete(output, key)
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "testsum:", err)
		broken = true
	}
	fmt.Printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped)
	if broken || failed > 0 {
		os.Exit(1)
	}
}
