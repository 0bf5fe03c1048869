package runtime

import "testing"

func TestShouldRestart(t *testing.T) {
	for _, c := range []struct {
		policy         string
		code, restarts int
		want           bool
	}{
		{"", 1, 0, false}, {"no", 1, 0, false},
		{"always", 0, 9, true}, {"unless-stopped", 0, 0, true},
		{"on-failure", 0, 0, false}, {"on-failure", 2, 5, true},
		{"on-failure:2", 1, 1, true}, {"on-failure:2", 1, 2, false}, {"on-failure:2", 0, 0, false},
	} {
		if got := shouldRestart(c.policy, c.code, c.restarts); got != c.want {
			t.Errorf("shouldRestart(%q, exit %d, after %d restarts) = %v, want %v", c.policy, c.code, c.restarts, got, c.want)
		}
	}
}
