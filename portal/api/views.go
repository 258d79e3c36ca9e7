package api

import (
	"time"

	"kiumtap/firmware"
	"kiumtap/portal/attendance"
	"kiumtap/portal/ingest"
	"kiumtap/portal/store"
	"kiumtap/protocol"
)

// Cards: GET /cards, GET /history, POST /enrol, POST /revoke.

// CardsView is a centre's children and their cards.
type CardsView struct {
	Centre   string       `json:"centre"`
	Name     string       `json:"name"`
	Children []ChildCards `json:"children"`
}

// ChildCards is a child's card: the active one, or else the latest, with
// its state ("" and no card: none ever bound); and all of them.
type ChildCards struct {
	Child string             `json:"child"`
	Name  string             `json:"name"` // masked
	Card  string             `json:"card,omitempty"`
	State firmware.CardState `json:"state,omitempty"`
	Since time.Time          `json:"since,omitzero"`
	Cards []firmware.Card    `json:"cards,omitempty"`
}

// EnrolRequest asks a centre's terminal to bind the next card presented
// to Child. Device may be empty when the centre has one terminal.
type EnrolRequest struct {
	Centre string `json:"centre"`
	Child  string `json:"child"`
	Device string `json:"device,omitempty"`
	By     string `json:"by"`
}

// EnrolResult is a terminal's answer to an enrol command.
type EnrolResult struct {
	Centre  string   `json:"centre"`
	Device  string   `json:"device"`
	Child   string   `json:"child"`
	Name    string   `json:"name"` // masked
	Command string   `json:"command"`
	Screen  []string `json:"screen,omitempty"`
}

// RevokeRequest revokes a child's active card.
type RevokeRequest struct {
	Centre string `json:"centre"`
	Child  string `json:"child"`
	By     string `json:"by"`
}

// Outcomes of a binding change, as its audit record (Change) keeps them.
const (
	ChangeApplied  = "applied"
	ChangeRefused  = "refused"
	ChangeConflict = "conflict" // lost a conflict: the card was bound first elsewhere
	ChangeReleased = "released" // a card that lost a conflict freed: the binding that won it ended
)

// Reasons of the portal's own, beside firmware's enrolment reasons.
const (
	RefuseNoSource firmware.Reason = "no_source" // no roster source for the centre
	RefuseInvalid  firmware.Reason = "invalid"   // the change would make an invalid roster
)

// Change is one change of a child's card at a centre, applied, refused or
// lost: the audit record kiumctl cards history shows.
type Change struct {
	Centre string `json:"centre"`
	firmware.BindingChange
	Outcome string          `json:"outcome"` // applied, refused, conflict, released
	Reason  firmware.Reason `json:"reason,omitempty"`
	Detail  string          `json:"detail,omitempty"`
	// The card_bound event it comes from; empty for a change made at the
	// portal (a revoke).
	Device string `json:"device,omitempty"`
	Log    string `json:"log,omitempty"`
	Seq    uint64 `json:"seq,omitempty"`
	// Recorded is when the bridge recorded it.
	Recorded time.Time `json:"recorded"`
}

// Terminals: GET /terminals.

// TerminalView is a terminal's last status and when it came, and the
// events messages of it this bridge refused.
type TerminalView struct {
	Centre   string           `json:"centre"`
	Device   string           `json:"device"`
	Status   *protocol.Status `json:"status"`
	Received time.Time        `json:"received,omitzero"`
	// Refused: this bridge refuses the terminal's events (the latest
	// reason, the first sequence of that message, since when and how
	// many), until it stores its events again.
	Refused *protocol.Refusal `json:"refused,omitempty"`
	// Clash: two terminals use this device ID.
	Clash *Clash `json:"clash,omitempty"`
}

// Clash is two (or more) terminals using one device ID, as a cloned SD
// card or a copied certificate makes: each connection takes the ID from
// the other, and their statuses come from instances that keep coming
// back. A restart never comes back: each start of the software is a new
// instance.
type Clash struct {
	Instances []string  `json:"instances"`
	Since     time.Time `json:"since"`
	Switches  int       `json:"switches"` // in the last ClashWindow
}

// ClashWindow is how long a device's switches of instance are remembered.
const ClashWindow = 10 * time.Minute

// Gaps: GET /gaps, POST /gap.

// Gap is a run of a terminal's events recorded as lost at the portal
// (store.Gap).
type Gap = store.Gap

// GapsView is what kiumctl gaps shows: the logs stalled now, and the gaps
// recorded.
type GapsView struct {
	Stalled  []ingest.Stall `json:"stalled"`
	Recorded []Gap          `json:"recorded"`
}

// GapRequest asks to record a stalled log's missing events as lost.
type GapRequest struct {
	Centre string `json:"centre"`
	Device string `json:"device"`
	// Through is the last missing sequence, the one before the terminal's
	// first: the operator confirms what the stall reports.
	Through uint64 `json:"through"`
	By      string `json:"by"`
}

// The bridge: GET /status, GET /texts, GET /export.

// Status is what the bridge reports of itself (kiumbridge status).
type Status struct {
	Time      time.Time `json:"time"`
	Connected bool      `json:"connected"` // to at least one broker
	// Brokers are the brokers' connections: each broker's URL and whether
	// at least one of its connections is up.
	Brokers []BrokerLink `json:"brokers"`
	Centres []string     `json:"centres"`
	Stats   Stats        `json:"stats"`
	// Failed are the latest texts providers refused for good, newest last.
	Failed []Job `json:"failed,omitempty"`
	// Stalled are terminal logs whose gap does not fill: an operator must
	// look (kiumctl gaps).
	Stalled []ingest.Stall `json:"stalled,omitempty"`
	// Refused are the terminals whose events messages this bridge refuses
	// (malformed, of an unknown centre…), until it stores their events
	// again; each terminal is told why.
	Refused []ingest.Refusal `json:"refused,omitempty"`
	// NotArrived are today's open not-arrived alerts (미등원) of every
	// centre served.
	NotArrived []AlertView `json:"not_arrived,omitempty"`
}

// Stats count what the bridge did.
type Stats struct {
	Ingest                 ingest.Stats
	TextsSent, TextsFailed int
	TextRetries, Published int
	// TextsBy counts the texts sent since the start by channel (alimtalk,
	// sms, lms); TextsFellBack those that fell back from AlimTalk.
	TextsBy       map[string]int `json:",omitempty"`
	TextsFellBack int            `json:",omitempty"`
}

// BrokerLink is a broker as the bridge's status shows it.
type BrokerLink struct {
	URL       string `json:"url"`
	Connected bool   `json:"connected"`
}

// Job is one text to one guardian (store.Job).
type Job = store.Job

// JobStates are the states of texts, in their order.
var JobStates = store.JobStates

// TextsView is the text queue (kiumbridge texts).
type TextsView struct {
	// Counts are all the texts by state.
	Counts map[string]int `json:"counts"`
	// Months count the texts sent by month (KST, "2026-12") and channel:
	// alimtalk, sms, lms ("unrecorded" for texts sent before channels were
	// kept); "fallback" counts those of sms and lms that fell back from
	// AlimTalk. For the provider's bill.
	Months map[string]map[string]int `json:"months,omitempty"`
	// Texts are those in the state asked for (all when none): those to
	// send first, in the order queued, then those done.
	Texts []Job `json:"texts"`
}

// ExportView is a centre's month of attendance (kiumbridge export): each
// child's sessions and the hourly occupancy (package attendance), and the
// children's names, to write as CSV or Excel.
type ExportView struct {
	Centre    string                 `json:"centre"`
	Month     string                 `json:"month"` // 2026-11
	Sessions  []attendance.Session   `json:"sessions"`
	Occupancy []attendance.Occupancy `json:"occupancy"`
	// Names are the children's names by ID, from the centre's roster
	// source, not masked: the report is the centre's own.
	Names map[string]string `json:"names"`
}
