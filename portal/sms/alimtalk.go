package sms

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// Channels a text goes by.
const (
	ChannelSMS      = "sms"
	ChannelLMS      = "lms"
	ChannelAlimTalk = "alimtalk" // KakaoTalk AlimTalk (알림톡)
)

// ChannelOf is the SMS channel of a rendered text: sms or lms.
func ChannelOf(t Text) string {
	if t.Type == TypeLMS {
		return ChannelLMS
	}
	return ChannelSMS
}

// The variables an AlimTalk template of ours may use, #{센터명} and so on:
// what Vars fills. A template with any other variable cannot be filled
// and is refused at start-up (CheckTemplates).
const (
	VarCentre = "센터명" // the centre's name, "우리동네키움센터 망원1동"
	VarChild  = "아동명" // the child's name
	VarTime   = "시각"  // HH:MM (KST): the tap, or the booked start of a not-arrived alert
)

// TemplateVars are the variables Vars fills.
var TemplateVars = []string{VarCentre, VarChild, VarTime}

// Kinds are the kinds of message, each of which may have a template.
var Kinds = []Kind{Arrival, Departure, AutoCheckOut, NotArrived}

// Vars are the values of a message's template variables.
func Vars(centreName, childName string, at time.Time) map[string]string {
	centre := clampName(stripBrand(cleanName(centreName)))
	full := brandFull
	if centre != "" {
		full += " " + centre
	}
	child := clampName(cleanName(childName))
	if child == "" {
		child = "등록된"
	}
	return map[string]string{VarCentre: full, VarChild: child, VarTime: at.In(kst).Format("15:04")}
}

// Templates are the AlimTalk templates of each kind of message: the
// provider's template ID (Solapi) or code (NHN Cloud). A kind without one
// goes by SMS/LMS.
type Templates map[Kind]string

var templateVar = regexp.MustCompile(`#\{([^{}]*)\}`)

// VarsOf lists the variables #{...} of a template's content, each once,
// in order.
func VarsOf(content string) []string {
	var out []string
	for _, m := range templateVar.FindAllStringSubmatch(content, -1) {
		if !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	return out
}

// TemplateError is a template that does not fit: a configuration error
// found at start-up, not a failed text at 3 pm.
type TemplateError struct {
	Provider, Kind, Template string
	Problem                  string
}

func (e *TemplateError) Error() string {
	return fmt.Sprintf("%s: the AlimTalk template %q for %s messages %s", e.Provider, e.Template, e.Kind, e.Problem)
}

// checkContent says what in a template's content we cannot fill.
func checkContent(provider string, k Kind, id, content string) error {
	var unknown []string
	for _, v := range VarsOf(content) {
		if !slices.Contains(TemplateVars, v) {
			unknown = append(unknown, "#{"+v+"}")
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return &TemplateError{Provider: provider, Kind: string(k), Template: id,
			Problem: fmt.Sprintf("uses %s, which kiumbridge cannot fill: its variables may only be #{%s}; change the template (and have it approved again) or name another", strings.Join(unknown, ", "), strings.Join(TemplateVars, "}, #{"))}
	}
	return nil
}

// Delivery is what a provider learned of a text's delivery after taking
// it: for AlimTalk, whether KakaoTalk delivered it or the provider fell
// back to SMS/LMS, and why.
type Delivery struct {
	// Final: the provider is done with the text; otherwise ask again.
	Final bool
	// Channel delivered it: alimtalk, sms or lms; "" when none did.
	Channel string
	// Fallback says why AlimTalk fell back to SMS/LMS (Kakao's result:
	// not a KakaoTalk user, AlimTalk blocked…).
	Fallback string
	// Failed says why nothing delivered it.
	Failed string
}

// Reporter is a provider that learns later how a text it took was
// delivered (AlimTalk, whose fallback the provider makes).
type Reporter interface {
	Report(ctx context.Context, r Receipt) (Delivery, error)
}

// TemplateChecker is a provider with AlimTalk templates, checked at
// start-up: each exists, is approved, and uses only TemplateVars.
type TemplateChecker interface {
	CheckTemplates(ctx context.Context) error
}
