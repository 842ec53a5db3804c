package check

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
)

// tfModule is what the checks need from the Terraform files, read with the
// HCL parser terraform itself uses, so they run where terraform is missing.
type tfModule struct {
	dir       string
	files     map[string]*hclsyntax.Body
	variables map[string]bool
	locals    map[string]hclsyntax.Expression
	resources map[string]bool // "aws_lb.main"
	data      map[string]bool // "aws_availability_zones.available"
	outputs   map[string]*hclsyntax.Block
	// refs are every traversal in every expression of every file.
	refs []hcl.Traversal
}

func loadTerraform(tb testing.TB) *tfModule {
	tb.Helper()
	dir := filepath.Join(repoRoot(tb), "infrastructure", "terraform")
	paths, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil {
		tb.Fatal(err)
	}
	if len(paths) == 0 {
		tb.Fatalf("no .tf files in %s", dir)
	}
	m := &tfModule{
		dir:       dir,
		files:     map[string]*hclsyntax.Body{},
		variables: map[string]bool{},
		locals:    map[string]hclsyntax.Expression{},
		resources: map[string]bool{},
		data:      map[string]bool{},
		outputs:   map[string]*hclsyntax.Block{},
	}
	parser := hclparse.NewParser()
	for _, p := range paths {
		f, diags := parser.ParseHCLFile(p)
		if diags.HasErrors() {
			tb.Fatalf("parse %s: %s", p, diags.Error())
		}
		body := f.Body.(*hclsyntax.Body)
		m.files[filepath.Base(p)] = body
		for _, b := range body.Blocks {
			switch b.Type {
			case "variable":
				m.variables[b.Labels[0]] = true
			case "resource":
				m.resources[b.Labels[0]+"."+b.Labels[1]] = true
			case "data":
				m.data[b.Labels[0]+"."+b.Labels[1]] = true
			case "output":
				m.outputs[b.Labels[0]] = b
			case "locals":
				for name, a := range b.Body.Attributes {
					if _, dup := m.locals[name]; dup {
						tb.Errorf("%s: local.%s declared twice", p, name)
					}
					m.locals[name] = a.Expr
				}
			}
		}
		_ = hclsyntax.VisitAll(body, func(n hclsyntax.Node) hcl.Diagnostics {
			if e, ok := n.(hclsyntax.Expression); ok {
				m.refs = append(m.refs, e.Variables()...)
			}
			return nil
		})
	}
	return m
}

func (m *tfModule) used(root string) map[string]bool {
	used := map[string]bool{}
	for _, tr := range m.refs {
		if tr.RootName() != root || len(tr) < 2 {
			continue
		}
		if a, ok := tr[1].(hcl.TraverseAttr); ok {
			used[a.Name] = true
		}
	}
	return used
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestTerraformRequiredFiles(t *testing.T) {
	t.Parallel()
	m := loadTerraform(t)
	// The README's project structure and the deploy guide name these.
	for _, f := range []string{"main.tf", "variables.tf", "outputs.tf", "vpc.tf", "ecs.tf", "nats.tf", "memorydb.tf", "rds.tf", "alb.tf"} {
		if _, ok := m.files[f]; !ok {
			t.Errorf("missing %s", filepath.Join(m.dir, f))
		}
	}
	for _, f := range []string{"README.md", "terraform.tfvars.example", "tests/mock.tftest.hcl"} {
		if _, err := os.Stat(filepath.Join(m.dir, f)); err != nil {
			t.Error(err)
		}
	}
}

// TestTerraformDurableStores: live state is in MemoryDB, whose writes are in
// a Multi-AZ log before they are acknowledged, not in ElastiCache; and no
// EFS file system exists, because NATS does not support JetStream on NFS
// (its nodes keep their stores on their tasks' storage). terraform test
// checks how these are configured; it cannot check that a resource is absent.
func TestTerraformDurableStores(t *testing.T) {
	t.Parallel()
	m := loadTerraform(t)
	for _, r := range keys(m.resources) {
		if strings.HasPrefix(r, "aws_elasticache_") || strings.HasPrefix(r, "aws_efs_") {
			t.Errorf("resource %s: live state belongs in MemoryDB and JetStream stores on the NATS tasks' own storage", r)
		}
	}
	if !m.resources["aws_memorydb_cluster.redis"] {
		t.Error("no aws_memorydb_cluster.redis")
	}
}

// TestTerraformVariables is the fallback of `terraform validate`: every var.X
// is declared, every declared variable is used, and likewise for locals;
// every resource and data source referred to exists.
func TestTerraformVariables(t *testing.T) {
	t.Parallel()
	m := loadTerraform(t)

	usedVars := m.used("var")
	for _, v := range keys(usedVars) {
		if !m.variables[v] {
			t.Errorf("var.%s is used but not declared", v)
		}
	}
	for _, v := range keys(m.variables) {
		if !usedVars[v] {
			t.Errorf("variable %q is declared but never used", v)
		}
	}

	usedLocals := m.used("local")
	for _, l := range keys(usedLocals) {
		if _, ok := m.locals[l]; !ok {
			t.Errorf("local.%s is used but not declared", l)
		}
	}
	for l := range m.locals {
		if !usedLocals[l] {
			t.Errorf("local %q is declared but never used", l)
		}
	}

	for _, tr := range m.refs {
		if len(tr) < 2 {
			continue
		}
		root := tr.RootName()
		a, ok := tr[1].(hcl.TraverseAttr)
		if !ok {
			continue
		}
		switch {
		case root == "data":
			if len(tr) < 3 {
				continue
			}
			if b, ok := tr[2].(hcl.TraverseAttr); ok && !m.data[a.Name+"."+b.Name] {
				t.Errorf("%s: data.%s.%s is not declared", tr.SourceRange(), a.Name, b.Name)
			}
		case strings.HasPrefix(root, "aws_"):
			if !m.resources[root+"."+a.Name] {
				t.Errorf("%s: %s.%s is not declared", tr.SourceRange(), root, a.Name)
			}
		}
	}
}

// TestTerraformVariableDocs: every variable says what it is for and has a type.
func TestTerraformVariableDocs(t *testing.T) {
	t.Parallel()
	m := loadTerraform(t)
	for _, body := range m.files {
		for _, b := range body.Blocks {
			if b.Type != "variable" {
				continue
			}
			for _, attr := range []string{"description", "type"} {
				if _, ok := b.Body.Attributes[attr]; !ok {
					t.Errorf("variable %q has no %s", b.Labels[0], attr)
				}
			}
		}
	}
}

// TestTerraformTfvarsExample: both profiles in terraform.tfvars.example (the
// production one is commented out) set only declared variables.
func TestTerraformTfvarsExample(t *testing.T) {
	t.Parallel()
	m := loadTerraform(t)
	text := readFile(t, filepath.Join(m.dir, "terraform.tfvars.example"))
	dev, prod, ok := strings.Cut(text, "-- production")
	if !ok {
		t.Fatal(`terraform.tfvars.example has no "# ---- production" profile`)
	}
	var uncommented []string
	for _, l := range strings.Split(prod, "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "#"))
		if strings.Contains(l, "=") {
			uncommented = append(uncommented, l)
		}
	}
	for name, src := range map[string]string{"development": dev, "production": strings.Join(uncommented, "\n")} {
		f, diags := hclparse.NewParser().ParseHCL([]byte(src), name)
		if diags.HasErrors() {
			t.Errorf("%s profile: %s", name, diags.Error())
			continue
		}
		attrs := f.Body.(*hclsyntax.Body).Attributes
		if len(attrs) < 5 {
			t.Errorf("%s profile sets %d variables, want a full profile", name, len(attrs))
		}
		for a := range attrs {
			if !m.variables[a] {
				t.Errorf("%s profile sets %q, which is not a declared variable", name, a)
			}
		}
		if env, ok := attrs["environment"]; ok {
			v, _ := env.Expr.Value(nil)
			if want := map[string]string{"development": "dev", "production": "prod"}[name]; v.AsString() != want {
				t.Errorf("%s profile: environment = %q, want %q", name, v.AsString(), want)
			}
		}
	}
}

// envParts is the named local's expression and those of the locals it
// merges in (merge({...}, local.auth_environment)), recursively: together
// they are what a task gets.
func (m *tfModule) envParts(tb testing.TB, local string) []hclsyntax.Expression {
	tb.Helper()
	expr, ok := m.locals[local]
	if !ok {
		tb.Fatalf("no local.%s", local)
	}
	parts := []hclsyntax.Expression{expr}
	if call, ok := expr.(*hclsyntax.FunctionCallExpr); ok && call.Name == "merge" {
		for _, arg := range call.Args {
			ref, ok := arg.(*hclsyntax.ScopeTraversalExpr)
			if !ok || ref.Traversal.RootName() != "local" || len(ref.Traversal) != 2 {
				continue
			}
			if a, ok := ref.Traversal[1].(hcl.TraverseAttr); ok {
				parts = append(parts, m.envParts(tb, a.Name)...)
			}
		}
	}
	return parts
}

// envKeys is every name the named local may set, its merged locals' included.
func (m *tfModule) envKeys(tb testing.TB, local string) []string {
	tb.Helper()
	var out []string
	for _, e := range m.envParts(tb, local) {
		out = append(out, objectKeys(e)...)
	}
	return out
}

// objectKeys collects the literal keys of every object constructor inside an
// expression, including those inside merge(...) and conditionals.
func objectKeys(e hclsyntax.Expression) []string {
	var out []string
	_ = hclsyntax.VisitAll(e, func(n hclsyntax.Node) hcl.Diagnostics {
		oc, ok := n.(*hclsyntax.ObjectConsExpr)
		if !ok {
			return nil
		}
		for _, item := range oc.Items {
			if name := hcl.ExprAsKeyword(item.KeyExpr); name != "" {
				out = append(out, name)
				continue
			}
			if v, diags := item.KeyExpr.Value(nil); !diags.HasErrors() && v.Type().FriendlyName() == "string" {
				out = append(out, v.AsString())
			}
		}
		return nil
	})
	return out
}

// TestTerraformServiceEnvironment: each ECS task gets every variable the
// README documents for its service, as environment or as a secret.
func TestTerraformServiceEnvironment(t *testing.T) {
	t.Parallel()
	c := readContract(t)
	m := loadTerraform(t)
	for svc, localsOf := range map[string][]string{
		"api-gateway":       {"gateway_environment", "gateway_secrets"},
		"broadcast-service": {"broadcast_environment", "broadcast_secrets"},
		"archival-worker":   {"archival_environment", "archival_secrets"},
	} {
		var got []string
		for _, l := range localsOf {
			got = append(got, m.envKeys(t, l)...)
		}
		for _, v := range c.env[svc] {
			if !slices.Contains(got, v) {
				t.Errorf("%s task: %s (README) is neither in its environment nor its secrets %v", svc, v, localsOf)
			}
		}
	}
}

// TestTerraformOutputsCarryNoSecret: outputs are addresses; none is marked
// sensitive (which would mean it holds something secret) and none refers to
// a password or secret attribute.
func TestTerraformOutputsCarryNoSecret(t *testing.T) {
	t.Parallel()
	m := loadTerraform(t)
	if len(m.outputs) == 0 {
		t.Fatal("no outputs")
	}
	for name, b := range m.outputs {
		if _, ok := b.Body.Attributes["sensitive"]; ok {
			t.Errorf("output %q is sensitive: outputs must not carry secrets at all", name)
		}
		for _, attr := range b.Body.Attributes {
			for _, tr := range attr.Expr.Variables() {
				for _, step := range tr {
					a, ok := step.(hcl.TraverseAttr)
					if ok && (strings.Contains(a.Name, "password") || strings.Contains(a.Name, "secret")) {
						t.Errorf("output %q refers to %s", name, a.Name)
					}
				}
			}
		}
	}
	for _, want := range []string{"public_url", "api_url", "websocket_url"} {
		if _, ok := m.outputs[want]; !ok {
			t.Errorf("no output %q", want)
		}
	}
}

// literalEnv evaluates the entries of the named local's object constructors
// (and those of the locals it merges in) that depend only on variables (at
// their defaults) and literals. Entries built from resources or other
// locals (addresses, URLs) are left out.
func (m *tfModule) literalEnv(tb testing.TB, local string) map[string]string {
	tb.Helper()
	parts := m.envParts(tb, local)
	defaults := map[string]cty.Value{}
	for _, body := range m.files {
		for _, b := range body.Blocks {
			if b.Type != "variable" {
				continue
			}
			if d, ok := b.Body.Attributes["default"]; ok {
				if v, diags := d.Expr.Value(nil); !diags.HasErrors() {
					defaults[b.Labels[0]] = v
				}
			}
		}
	}
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(defaults)},
		Functions: map[string]function.Function{"tostring": toString},
	}
	out := map[string]string{}
	for _, expr := range parts {
		evalLiterals(expr, ctx, out)
	}
	return out
}

// evalLiterals adds to out the object constructors' entries in expr that
// evaluate in ctx.
func evalLiterals(expr hclsyntax.Expression, ctx *hcl.EvalContext, out map[string]string) {
	_ = hclsyntax.VisitAll(expr, func(n hclsyntax.Node) hcl.Diagnostics {
		oc, ok := n.(*hclsyntax.ObjectConsExpr)
		if !ok {
			return nil
		}
		for _, item := range oc.Items {
			key := hcl.ExprAsKeyword(item.KeyExpr)
			v, diags := item.ValueExpr.Value(ctx)
			if key == "" || diags.HasErrors() || !v.IsKnown() || v.IsNull() {
				continue
			}
			if s, err := convert.Convert(v, cty.String); err == nil {
				out[key] = s.AsString()
			}
		}
		return nil
	})
}

// toString is Terraform's tostring for the primitive values our env uses.
var toString = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "v", Type: cty.DynamicPseudoType}},
	Type:   function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		return convert.Convert(args[0], cty.String)
	},
})

// TestTerraformNeverAutoCreatesItems: on AWS a GET of an unknown item is a
// 404, whatever the variables say: AUTO_CREATE_ITEMS is the literal "false"
// and no variable can turn it on.
func TestTerraformNeverAutoCreatesItems(t *testing.T) {
	t.Parallel()
	m := loadTerraform(t)
	if got, ok := m.literalEnv(t, "gateway_environment")["AUTO_CREATE_ITEMS"]; !ok || got != "false" {
		t.Errorf("gateway AUTO_CREATE_ITEMS = %q (set %v), want the literal \"false\"", got, ok)
	}
	for v := range m.variables {
		if strings.Contains(v, "auto_create") {
			t.Errorf("variable %q could turn AUTO_CREATE_ITEMS on", v)
		}
	}
	files, err := filepath.Glob(filepath.Join(m.dir, "*.tf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no .tf files: %v", err)
	}
	setting := regexp.MustCompile(`AUTO_CREATE_ITEMS\s*=\s*(.*)`)
	for _, f := range files {
		for _, s := range setting.FindAllStringSubmatch(readFile(t, f), -1) {
			if strings.TrimSpace(s[1]) != `"false"` {
				t.Errorf("%s sets AUTO_CREATE_ITEMS = %s", filepath.Base(f), s[1])
			}
		}
	}
}

// TestTerraformBehindTheALB: the tasks sit behind the ALB, which appends the
// client's address as the rightmost X-Forwarded-For entry. Without trusting
// it every viewer and every request would count against the ALB's own
// address; and nothing on AWS may hand out development tokens.
func TestTerraformBehindTheALB(t *testing.T) {
	t.Parallel()
	m := loadTerraform(t)
	gateway, broadcast := m.literalEnv(t, "gateway_environment"), m.literalEnv(t, "broadcast_environment")
	for _, c := range []struct {
		svc, name, want string
		env             map[string]string
	}{
		{"broadcast-service", "WS_TRUST_FORWARDED_FOR", "true", broadcast},
		{"api-gateway", "TRUST_PROXY_HEADERS", "true", gateway},
		{"api-gateway", "AUTH_DEV_TOKENS", "false", gateway},
		{"broadcast-service", "AUTH_DEV_TOKENS", "false", broadcast},
		{"api-gateway", "AUTH_DISABLED", "false", gateway},
	} {
		if got, ok := c.env[c.name]; !ok || got != c.want {
			t.Errorf("%s %s = %q (set %v), want %q", c.svc, c.name, got, ok, c.want)
		}
	}
	if got := broadcast["WS_MAX_CONNS_PER_IP"]; got == "0" {
		t.Errorf("broadcast-service WS_MAX_CONNS_PER_IP = %q: the per-address limit must stay on behind the ALB", got)
	}
}
