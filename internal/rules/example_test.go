package rules_test

import (
	"fmt"

	"github.com/ward-dev/ward/internal/rules"
)

func ExampleCompileToCedar() {
	src := []byte(`# Payments above 100 need two people from finance.
never call payments.send with argument amount over 100 without approval from 2 of group:finance.
`)
	out, err := rules.CompileToCedar("rules.txt", src)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(string(out))
	// Output:
	// // rules.txt:2: never call payments.send with argument amount over 100 without approval from 2 of group:finance.
	// @id("rules.txt:2")
	// @rule("never call payments.send with argument amount over 100 without approval from 2 of group:finance.")
	// @escalate("2 of group:finance")
	// forbid (
	//     principal,
	//     action == Action::"call_tool",
	//     resource == Tool::"payments.send"
	// ) when {
	//     context.arguments has amount && context.arguments.amount > 100
	// };
}

func ExampleCompile_errors() {
	src := []byte(`agents in group analytics may call postgres.query.
agents in group analytics may use postgres.query.
never delete more than 10 rows without approval from 0 of group:dba.
`)
	_, err := rules.Compile("rules.txt", src)
	fmt.Println(err)
	// Output:
	// rules.txt:2:31: expected "call", "read", "get", "request" or "run" after "may", found "use"
	// rules.txt:3:54: approval count must be at least 1, found 0
}
