package binder

import "kiumtap/portal/registry"

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
