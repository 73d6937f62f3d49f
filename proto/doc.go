// Package proto holds the types every part of Sluice shares: change events
// and their wire encoding, positions, table names, the task spec, task
// status and the schema description that schema sync carries. It imports
// nothing of Sluice's own.
package proto
