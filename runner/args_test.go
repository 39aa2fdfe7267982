package main

import (
	"bytes"
	"strings"
	"testing"
)

// Every command refuses what it does not take, in one line, before doing
// anything: a stray argument, and a bool flag's value written apart from it
// (--eval.after_training false, which once trained and then evaluated).
func TestCommandsRefuseStrayArguments(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "--max-steps", "100", "--eval.after_training", "false"}, `runner train: unexpected argument "false": a bool flag takes its value after '=' (write --flag=false, not --flag false)`},
		{[]string{"train", "--resume", "true", "--run-dir", "x"}, `runner train: unexpected argument "true": a bool flag takes its value after '='`},
		{[]string{"train", "bogus"}, `runner train: unexpected argument "bogus": it takes flags only (see --help)`},
		{[]string{"eval", "--run-dir", "x", "bogus"}, `runner eval: unexpected argument "bogus"`},
		{[]string{"index", "--run-dir", "x", "--images", "y", "--out", "z", "--skip-bad", "false"}, `runner index: unexpected argument "false": a bool flag`},
		{[]string{"search", "--index", "x", "--query", "y", "--json", "false"}, `runner search: unexpected argument "false": a bool flag`},
		{[]string{"export", "--config", "x", "--force", "false"}, `runner export: unexpected argument "false": a bool flag`},
		{[]string{"config", "bogus"}, `runner config: unexpected argument "bogus"`},
		{[]string{"upgrade", "--run-dir", "x", "bogus"}, `runner upgrade: unexpected argument "bogus"`},
		{[]string{"data", "shards", "--format", "folder", "--path", "x", "--out", "y", "bogus"}, `runner data shards: unexpected argument "bogus"`},
		{[]string{"data", "fetch", "cifar10", "bogus"}, `accepts 1 arg(s), received 2`},
		{[]string{"data", "bogus"}, `unknown command "bogus" for "runner data"`},
		{[]string{"bogus"}, `unknown command "bogus" for "runner"`},
	} {
		root := newRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(c.args)
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("runner %s: %v, want one line containing %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}
