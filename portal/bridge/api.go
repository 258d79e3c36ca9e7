package bridge

import "kiumtap/portal/api"

// The control API's types, errors and client are package api's (what
// kiumctl links, without the bridge); the bridge answers with them under
// these names.

type (
	CardsView     = api.CardsView
	ChildCards    = api.ChildCards
	EnrolRequest  = api.EnrolRequest
	EnrolResult   = api.EnrolResult
	RevokeRequest = api.RevokeRequest
	Change        = api.Change
	TerminalView  = api.TerminalView
	Clash         = api.Clash
	Gap           = api.Gap
	GapsView      = api.GapsView
	GapRequest    = api.GapRequest
	Status        = api.Status
	Stats         = api.Stats
	BrokerLink    = api.BrokerLink
	TextsView     = api.TextsView
	ExportView    = api.ExportView
	ControlError  = api.ControlError
	AnswerError   = api.AnswerError
)

// Outcomes of a binding change, and the portal's own reasons.
const (
	ChangeApplied  = api.ChangeApplied
	ChangeRefused  = api.ChangeRefused
	ChangeConflict = api.ChangeConflict
	ChangeReleased = api.ChangeReleased

	RefuseNoSource = api.RefuseNoSource
	RefuseInvalid  = api.RefuseInvalid
)

// ClashWindow is how long a device's switches of instance are remembered.
const ClashWindow = api.ClashWindow

// Errors of the control socket's operations (api's: each answered with
// its status).
var (
	ErrUnknownCentre = api.ErrUnknownCentre
	ErrDevice        = api.ErrDevice
	ErrNoAnswer      = api.ErrNoAnswer
	ErrNotConnected  = api.ErrNotConnected
	ErrBroker        = api.ErrBroker
	ErrNoBridge      = api.ErrNoBridge
)

// JobStates are the states of texts, in their order.
var JobStates = api.JobStates

// ControlClient and Ask are the control socket's client (package api).
var (
	ControlClient = api.ControlClient
	Ask           = api.Ask
)
