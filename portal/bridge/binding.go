package bridge

import "kiumtap/portal/registry"

// Bindings made at terminals reach the portal as card_bound events
// (docs/protocol.md, "Card enrolment"). Storing one queues a binding job
// in the same transaction; the binder (binder.go) takes the jobs in order
// and, for each, decides (package registry: pure functions of the rosters
// and the card's registry entry), records the decision in the store,
// writes the roster sources and publishes the centres that changed.

// The registry's rule, by the names the binder uses.
type (
	binding = registry.Binding
	holder  = registry.Holder
	cardRef = registry.CardRef
	op      = registry.Op
	edit    = registry.Edit
	verdict = registry.Verdict
)

const (
	opBind    = registry.OpBind
	opReplace = registry.OpReplace
	opState   = registry.OpState
)

var (
	holderOf   = registry.HolderOf
	first      = registry.First
	applyOps   = registry.ApplyOps
	decide     = registry.Decide
	activeCard = registry.ActiveCard
	holds      = registry.Holds
	childName  = registry.ChildName
	kst        = registry.KST
)
