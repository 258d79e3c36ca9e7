package web

import (
	"context"

	"kiumtap/portal/api"
	"kiumtap/portal/source"
)

// Bridge is what the staff page asks of kiumbridge's bridge
// (portal/bridge.Bridge has it).
type Bridge interface {
	Source(centre string) *source.Source
	Terminals(centre string) ([]api.TerminalView, error)
	Export(centre, month string) (*api.ExportView, error)
	Cards(centre string) (*api.CardsView, error)
	History(centre, child string) ([]api.Change, error)
	Revoke(centre, child, by string) (api.Change, error)
	Enrol(ctx context.Context, req api.EnrolRequest) (*api.EnrolResult, error)
	ResendText(ctx context.Context, centre, id, phone string) error
	Alerts(ctx context.Context, centre, day string) (*api.AlertsView, error)
	MarkAbsent(ctx context.Context, req api.AbsentRequest) error
}

// ServedBy returns o with every page the bridge serves: Source,
// Terminals, Export, the cards', the texts' (Texts is o's, the store's)
// and the not-arrived alerts'.
// The bridge is asked for at each request, so the page can be made before
// it (its Notify is one of the bridge's options).
func (o Options) ServedBy(b func() Bridge) Options {
	o.Source = func(c string) *source.Source { return b().Source(c) }
	o.Terminals = func(c string) ([]api.TerminalView, error) { return b().Terminals(c) }
	o.Export = func(c, m string) (*api.ExportView, error) { return b().Export(c, m) }
	o.Cards = func(c string) (*api.CardsView, error) { return b().Cards(c) }
	o.History = func(c, child string) ([]api.Change, error) { return b().History(c, child) }
	o.Revoke = func(c, child, by string) (api.Change, error) { return b().Revoke(c, child, by) }
	o.Enrol = func(ctx context.Context, req api.EnrolRequest) (*api.EnrolResult, error) { return b().Enrol(ctx, req) }
	o.Resend = func(ctx context.Context, c, id, phone string) error { return b().ResendText(ctx, c, id, phone) }
	o.Alerts = func(ctx context.Context, c string) (*api.AlertsView, error) { return b().Alerts(ctx, c, "") }
	o.MarkAbsent = func(ctx context.Context, req api.AbsentRequest) error { return b().MarkAbsent(ctx, req) }
	return o
}
