// Package conformancetable reads the README's table of what clients do with the conformance
// catalogue (section "A conformance kit for other clients"), for the tests that keep it true.
package conformancetable

import (
	"fmt"
	"strings"

	"github.com/mxfetch/mxfetch/testserver"
)

// Verdicts returns the verdicts of one column of the table (1 mediaclient, 2 the mxfetch CLI,
// 3 mautrix-go, 4 curl) by scenario, and the problems it found in the table's rows.
func Verdicts(readme string, column int) (map[string]testserver.Verdict, []string) {
	_, section, _ := strings.Cut(readme, "\n### A conformance kit for other clients\n")
	section, _, _ = strings.Cut(section, "\n## ")
	letters := map[string]testserver.Verdict{"P": testserver.Pass, "F": testserver.Fail, "O": testserver.Observed}
	out := map[string]testserver.Verdict{}
	var problems []string
	for _, line := range strings.Split(section, "\n") {
		name, ok := strings.CutPrefix(line, "| `")
		if !ok {
			continue
		}
		name, _, _ = strings.Cut(name, "`")
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if len(cells) != 5 {
			problems = append(problems, fmt.Sprintf("the row of %s has %d cells; want 5", name, len(cells)))
			continue
		}
		if _, dup := out[name]; dup {
			problems = append(problems, fmt.Sprintf("%s has two rows", name))
		}
		letter, _, _ := strings.Cut(strings.Fields(cells[column])[0], ":") // "P", "F: why", "O (why)"
		out[name] = letters[letter]
	}
	return out, problems
}
