package firmware

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"testing"
)

// Every outcome, reason, flag and enrolment flow this package declares has
// a label in both languages, read from the source so that a constant added
// later cannot go without one.
func TestEveryCodeHasALabel(t *testing.T) {
	pkgs, err := parser.ParseDir(token.NewFileSet(), ".", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range pkgs["firmware"].Files {
		for _, decl := range f.Decls {
			g, ok := decl.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, spec := range g.Specs {
				v := spec.(*ast.ValueSpec)
				typ, ok := v.Type.(*ast.Ident)
				if !ok || len(v.Values) != len(v.Names) {
					continue
				}
				for i, name := range v.Names {
					lit, ok := v.Values[i].(*ast.BasicLit)
					if !ok {
						continue
					}
					code, _ := strconv.Unquote(lit.Value)
					var l Label
					var known bool
					switch typ.Name {
					case "Outcome":
						l, known = outcomeLabels[Outcome(code)]
					case "Reason", "Flow":
						l, known = reasonLabels[Reason(code)]
					case "Flag":
						l, known = flagLabels[Flag(code)]
					default:
						continue
					}
					n++
					if !known || l.Ko == "" || l.En == "" || l.Ko == code {
						t.Errorf("%s %s (%q) has no label in both languages: %+v", typ.Name, name.Name, code, l)
					}
				}
			}
		}
	}
	if n < 40 {
		t.Fatalf("found only %d codes: the source walk is broken", n)
	}
	if got := Reason("something_new").Label(); got.Ko != "something_new" {
		t.Errorf("an unknown reason reads %+v, want its code", got)
	}
}
