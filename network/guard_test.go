package network

import (
	"strings"
	"testing"
)

// fakeIPTables is a firewall that holds rules as iptables-save prints
// them, by table, enough for ensureGuards and removeGuards.
type fakeIPTables struct {
	rules map[string][]string
	calls []string
}

func (f *fakeIPTables) run(stdin []byte, name string, args ...string) ([]byte, error) {
	f.calls = append(f.calls, name+" "+strings.Join(args, " "))
	if f.rules == nil {
		f.rules = map[string][]string{}
	}
	switch name {
	case "iptables-save":
		return []byte("*nat\n:POSTROUTING ACCEPT [0:0]\n" + strings.Join(f.rules["nat"], "\n") + "\nCOMMIT\n" +
			"*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n" + strings.Join(f.rules["filter"], "\n") + "\nCOMMIT\n"), nil
	case "iptables-restore":
		table := ""
		for _, l := range strings.Split(string(stdin), "\n") {
			w := strings.Fields(l)
			switch {
			case len(w) == 0 || l == "COMMIT":
			case strings.HasPrefix(l, "*"):
				table = l[1:]
			case strings.HasPrefix(l, ":"):
				f.rules[table] = append(f.rules[table], w[0]+" - [0:0]")
			case w[0] == "-I":
				// "-I CHAIN N rest" is saved as "-A CHAIN rest".
				f.rules[table] = append(f.rules[table], "-A "+w[1]+" "+strings.Join(w[3:], " "))
			default:
				f.rules[table] = append(f.rules[table], l)
			}
		}
		return nil, nil
	case "iptables":
		table := args[2]
		rule := "-A " + strings.Join(args[4:], " ")
		for i, r := range f.rules[table] {
			if r == rule {
				f.rules[table] = append(f.rules[table][:i], f.rules[table][i+1:]...)
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
	if err := ensureGuards("sbx-1", "10.1.0.0/16", false); err != nil {
		t.Fatal(err)
	}
	if err := ensureGuards("sbx-2", "10.2.0.0/16", true); err != nil {
		t.Fatal(err)
	}
	n := len(fake.rules["filter"]) + len(fake.rules["nat"])
	calls := len(fake.calls)
	if err := ensureGuards("sbx-1", "10.1.0.0/16", false); err != nil {
		t.Fatal(err)
	}
	if len(fake.rules["filter"])+len(fake.rules["nat"]) != n || len(fake.calls) != calls+1 {
		t.Errorf("a second ensureGuards changed the rules or did more than look: %q", fake.calls[calls:])
	}
	all := strings.Join(fake.rules["filter"], "\n")
	wants := []string{":SBXRUN-ISOLATE - [0:0]", isolateJump, isolateDrop, guardRules("sbx-1")[0], guardRules("sbx-1")[1], guardRules("sbx-2")[1],
		":SBXRUN-FORWARD - [0:0]", forwardJump,
		"-A SBXRUN-FORWARD -s 10.1.0.0/16 -i sbx-1 -o sbx-1 -j ACCEPT",
		"-A SBXRUN-FORWARD -s 10.1.0.0/16 -i sbx-1 ! -o sbx+ -j ACCEPT",
		"-A SBXRUN-FORWARD -d 10.1.0.0/16 ! -i sbx+ -o sbx-1 -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT",
		// An internal network's traffic stays on its bridge.
		"-A SBXRUN-FORWARD -s 10.2.0.0/16 -i sbx-2 -o sbx-2 -j ACCEPT"}
	for _, want := range wants {
		if strings.Count(all, want) != 1 {
			t.Errorf("rule %q present %d times:\n%s", want, strings.Count(all, want), all)
		}
	}
	nat := strings.Join(fake.rules["nat"], "\n")
	for _, want := range []string{":SBXRUN-MASQ - [0:0]", masqJump,
		"-A SBXRUN-MASQ -s 10.1.0.0/16 -d 10.1.0.0/16 -j RETURN",
		"-A SBXRUN-MASQ -s 10.1.0.0/16 ! -d 224.0.0.0/4 -j MASQUERADE"} {
		if strings.Count(nat, want) != 1 {
			t.Errorf("nat rule %q present %d times:\n%s", want, strings.Count(nat, want), nat)
		}
	}
	if strings.Contains(nat, "10.2.0.0/16") {
		t.Errorf("an internal network is masqueraded:\n%s", nat)
	}
	if err := removeGuards("sbx-1", "10.1.0.0/16"); err != nil {
		t.Fatal(err)
	}
	if nat := strings.Join(fake.rules["nat"], "\n"); strings.Contains(nat, "10.1.0.0/16") || !strings.Contains(nat, masqJump) {
		t.Errorf("after removeGuards(sbx-1), nat:\n%s", nat)
	}
	all = strings.Join(fake.rules["filter"], "\n")
	if strings.Contains(all, "sbx-1 ") || !strings.Contains(all, guardRules("sbx-2")[0]) || !strings.Contains(all, isolateDrop) || !strings.Contains(all, forwardRules("sbx-2", "10.2.0.0/16", true)[0]) {
		t.Errorf("after removeGuards(sbx-1):\n%s", all)
	}
}
