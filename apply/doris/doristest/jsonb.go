package doristest

import "github.com/sluicedb/sluice/verify/rowside"

// jsonbText prints a JSON document as PostgreSQL prints a jsonb (keys in
// jsonb's order, ", " and ": " between items): Doris keeps a document's
// meaning, not its spelling, so this is how the read-back compares it.
func jsonbText(doc string) (string, bool) { return rowside.JSONBText(doc) }
