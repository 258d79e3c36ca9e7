package api

import "time"

// Not-arrived alerts (미등원, package portal/absence): GET /alerts,
// POST /absent; Status.NotArrived.

// AlertView is a not-arrived alert.
type AlertView struct {
	Centre string `json:"centre"`
	Day    string `json:"day"`
	Child  string `json:"child"`
	Name   string `json:"name"`   // masked
	Window string `json:"window"` // 14:00–18:00
	// Due is when it was due (the window's start and the grace), Raised
	// when it was raised.
	Due    time.Time `json:"due"`
	Raised time.Time `json:"raised"`
	// Told is how many guardians' messages were queued (0: the centre
	// does not tell guardians, or not yet).
	Told int `json:"told,omitempty"`
	// Arrived: the later arrival that ended it; zero while open.
	Arrived time.Time `json:"arrived,omitzero"`
}

// AbsentView is a child marked absent (결석) for the day.
type AbsentView struct {
	Child string    `json:"child"`
	Name  string    `json:"name"` // masked
	By    string    `json:"by"`
	At    time.Time `json:"at"`
	Note  string    `json:"note,omitempty"`
}

// AlertsView is a centre's not-arrived alerts and absences of a day.
type AlertsView struct {
	Centre string       `json:"centre"`
	Day    string       `json:"day"`
	Alerts []AlertView  `json:"alerts"`
	Absent []AbsentView `json:"absent"`
}

// AbsentRequest marks a child absent for a day (default today), or takes
// the mark back (Undo).
type AbsentRequest struct {
	Centre string `json:"centre"`
	Child  string `json:"child"`
	Day    string `json:"day,omitempty"` // 2026-12-01; "" today (KST)
	By     string `json:"by"`
	Note   string `json:"note,omitempty"`
	Undo   bool   `json:"undo,omitempty"`
}
