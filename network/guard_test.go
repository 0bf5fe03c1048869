package network

import (
	"strings"
	"testing"
)

// fakeIPTables is a firewall that holds rules as iptables-save prints
// them, enough for ensureGuards and removeGuards.
type fakeIPTables struct {
	rules []string
	calls []string
}

func (f *fakeIPTables) run(stdin []byte, name string, args ...string) ([]byte, error) {
	f.calls = append(f.calls, name+" "+strings.Join(args, " "))
	switch name {
	case "iptables-save":
		return []byte("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n" + strings.Join(f.rules, "\n") + "\nCOMMIT\n"), nil
	case "iptables-restore":
		for _, l := range strings.Split(string(stdin), "\n") {
			w := strings.Fields(l)
			switch {
			case len(w) == 0 || l == "*filter" || l == "COMMIT":
			case strings.HasPrefix(l, ":"):
				f.rules = append(f.rules, w[0]+" - [0:0]")
			case w[0] == "-I":
				// "-I CHAIN N rest" is saved as "-A CHAIN rest".
				f.rules = append(f.rules, "-A "+w[1]+" "+strings.Join(w[3:], " "))
			default:
				f.rules = append(f.rules, l)
			}
		}
		return nil, nil
	case "iptables":
		rule := "-A " + strings.Join(args[4:], " ")
		for i, r := range f.rules {
			if r == rule {
				f.rules = append(f.rules[:i], f.rules[i+1:]...)
				return nil, nil
			}
		}
		return nil, errNoRule
	}
	return nil, nil
}

var errNoRule = &noRule{}

type noRule struct{}

func (*noRule) Error() string { return "no such rule" }

func TestGuards(t *testing.T) {
	fake := &fakeIPTables{}
	old := iptablesCmd
	t.Cleanup(func() { iptablesCmd = old })
	iptablesCmd = fake.run
	if err := ensureGuards("sbx-1"); err != nil {
		t.Fatal(err)
	}
	if err := ensureGuards("sbx-2"); err != nil {
		t.Fatal(err)
	}
	n := len(fake.rules)
	calls := len(fake.calls)
	if err := ensureGuards("sbx-1"); err != nil {
		t.Fatal(err)
	}
	if len(fake.rules) != n || len(fake.calls) != calls+1 {
		t.Errorf("a second ensureGuards changed the rules or did more than look: %q", fake.calls[calls:])
	}
	all := strings.Join(fake.rules, "\n")
	for _, want := range []string{":SBXRUN-ISOLATE - [0:0]", isolateJump, isolateDrop, guardRules("sbx-1")[0], guardRules("sbx-1")[1], guardRules("sbx-2")[1]} {
		if strings.Count(all, want) != 1 {
			t.Errorf("rule %q present %d times:\n%s", want, strings.Count(all, want), all)
		}
	}
	if err := removeGuards("sbx-1"); err != nil {
		t.Fatal(err)
	}
	all = strings.Join(fake.rules, "\n")
	if strings.Contains(all, "sbx-1 ") || !strings.Contains(all, guardRules("sbx-2")[0]) || !strings.Contains(all, isolateDrop) {
		t.Errorf("after removeGuards(sbx-1):\n%s", all)
	}
}
