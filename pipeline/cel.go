package pipeline

import (
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"
)

// celRecordType is the CEL type of the variable `record`.
const celRecordType = "logrouter.Record"

// CELCostLimit bounds the runtime cost of one evaluation of one expression (cel-go's cost units,
// roughly one per operation and one per 10 bytes a string function scans). An expression that
// exceeds it fails for that record (counted; the step does nothing), so no expression can run
// away: `record.message.contains("x")` on a 1 MiB message costs about 105,000.
const CELCostLimit = 200_000

// MaxExpressionLen bounds the text of one CEL expression.
const MaxExpressionLen = 4096

// celRecord is what `record` is during one evaluation: the Runner's view of the current
// record and its file's metadata. It is reused for every line.
type celRecord struct {
	rec *Record
	// msg caches rec.Message as a string for this evaluation round (built once per record,
	// only when an expression reads record.message).
	msg    string
	msgSet bool
}

func (c *celRecord) reset(rec *Record) {
	c.rec = rec
	c.msg, c.msgSet = "", false
}

// invalidate drops the cached message after a step changed it.
func (c *celRecord) invalidate() { c.msg, c.msgSet = "", false }

func (c *celRecord) message() string {
	if !c.msgSet {
		c.msg, c.msgSet = string(c.rec.Message), true
	}
	return c.msg
}

// text returns the message as a string: the copy when there is one, else a view of
// rec.Message (view true) that is valid only until the message or its buffer changes, for
// parse steps that copy what they keep (pieces).
func (c *celRecord) text() (s string, view bool) {
	if c.msgSet {
		return c.msg, false
	}
	return unsafe.String(unsafe.SliceData(c.rec.Message), len(c.rec.Message)), true
}

func (c *celRecord) meta() *Meta {
	if c.rec.Meta == nil {
		return &emptyMeta
	}
	return c.rec.Meta
}

// emptyMeta, emptyFields and emptyStrings stand in for what a record lacks, so reading
// record.fields or record.labels allocates nothing; CEL never writes them.
var (
	emptyMeta    Meta
	emptyFields  = map[string]any{}
	emptyStrings = map[string]string{}
)

// ResolveName implements interpreter.Activation without allocating.
func (c *celRecord) ResolveName(name string) (any, bool) {
	if name == "record" {
		return c, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (c *celRecord) Parent() interpreter.Activation { return nil }

var _ interpreter.Activation = (*celRecord)(nil)

// celField is one member of `record`.
type celField struct {
	typ *types.Type
	get func(c *celRecord) any
}

var (
	mapStringDyn    = types.NewMapType(types.StringType, types.DynType)
	mapStringString = types.NewMapType(types.StringType, types.StringType)
)

// celFields are the members of `record`; docs/pipelines.md#cel lists them.
var celFields = map[string]celField{
	"message": {types.StringType, func(c *celRecord) any { return c.message() }},
	"fields": {mapStringDyn, func(c *celRecord) any {
		if c.rec.Fields == nil {
			return emptyFields
		}
		return c.rec.Fields
	}},
	"labels": {mapStringString, func(c *celRecord) any {
		if l := c.meta().Labels; l != nil {
			return l
		}
		return emptyStrings
	}},
	"annotations": {mapStringString, func(c *celRecord) any {
		if a := c.meta().Annotations; a != nil {
			return a
		}
		return emptyStrings
	}},
	"namespace":  {types.StringType, func(c *celRecord) any { return c.meta().Namespace }},
	"pod":        {types.StringType, func(c *celRecord) any { return c.meta().Pod }},
	"container":  {types.StringType, func(c *celRecord) any { return c.meta().Container }},
	"node":       {types.StringType, func(c *celRecord) any { return c.meta().Node }},
	"owner_kind": {types.StringType, func(c *celRecord) any { return c.meta().OwnerKind }},
	"owner_name": {types.StringType, func(c *celRecord) any { return c.meta().OwnerName }},
	"stream":     {types.StringType, func(c *celRecord) any { return c.rec.Stream }},
	"time":       {types.TimestampType, func(c *celRecord) any { return c.rec.Time }},
}

// celProvider adds the type of `record` to cel-go's provider: field access then goes through
// celFields directly (no map is built per record) and misspelled members fail type-checking.
type celProvider struct {
	types.Provider
	names []string
}

func (p *celProvider) FindStructType(name string) (*types.Type, bool) {
	if name == celRecordType {
		return types.NewTypeTypeWithParam(types.NewObjectType(celRecordType)), true
	}
	return p.Provider.FindStructType(name)
}

func (p *celProvider) FindStructFieldNames(name string) ([]string, bool) {
	if name == celRecordType {
		return p.names, true
	}
	return p.Provider.FindStructFieldNames(name)
}

func (p *celProvider) FindStructFieldType(name, field string) (*types.FieldType, bool) {
	if name != celRecordType {
		return p.Provider.FindStructFieldType(name, field)
	}
	f, ok := celFields[field]
	if !ok {
		return nil, false
	}
	get := f.get
	return &types.FieldType{
		Type:  f.typ,
		IsSet: func(obj any) bool { _, ok := obj.(*celRecord); return ok },
		GetFrom: func(obj any) (any, error) {
			c, ok := obj.(*celRecord)
			if !ok {
				return nil, fmt.Errorf("not a record: %T", obj)
			}
			return get(c), nil
		},
	}, true
}

// sharedCELEnv is the one environment, built on first use: building it is a third of
// compiling a typical pipeline (BenchmarkCompile), and a *cel.Env is immutable and safe for
// concurrent use.
var sharedCELEnv = sync.OnceValues(newCELEnv)

// newCELEnv builds the environment every expression is compiled in: the standard library,
// the string, list, set, math and encoder extensions, optional types (`record.fields.?level`)
// and the variable `record`.
func newCELEnv() (*cel.Env, error) {
	base, err := cel.NewEnv(
		cel.OptionalTypes(),
		ext.Strings(),
		ext.Lists(),
		ext.Sets(),
		ext.Math(),
		ext.Encoders(),
		cel.CrossTypeNumericComparisons(true),
	)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(celFields))
	for n := range celFields {
		names = append(names, n)
	}
	p := &celProvider{Provider: base.CELTypeProvider(), names: names}
	return base.Extend(
		cel.CustomTypeProvider(p),
		cel.Variable("record", types.NewObjectType(celRecordType)),
	)
}

// maxCELSize is the size the cost estimate assumes for values it cannot size: a line (and
// anything derived from it) is at most about 1 MiB (multiline maxBytes, the collector's line
// limit).
const maxCELSize = 1 << 20

// sizeEstimator bounds every value of unknown size by maxCELSize.
type sizeEstimator struct{}

func (sizeEstimator) EstimateSize(checker.AstNode) *checker.SizeEstimate {
	return &checker.SizeEstimate{Min: 0, Max: maxCELSize}
}

func (sizeEstimator) EstimateCallCost(function, overloadID string, target *checker.AstNode, args []checker.AstNode) *checker.CallEstimate {
	return nil
}

// celExpr is one compiled expression.
type celExpr struct {
	prg cel.Program
}

// compileCEL compiles and type-checks src. wantBool requires a bool (or dyn) result. The
// error lists each problem as "line:column: message".
func compileCEL(env *cel.Env, src string, wantBool bool) (*celExpr, error) {
	if len(src) > MaxExpressionLen {
		return nil, fmt.Errorf("expression is %d bytes, at most %d allowed", len(src), MaxExpressionLen)
	}
	if strings.TrimSpace(src) == "" {
		return nil, fmt.Errorf("empty expression")
	}
	ast, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		var msgs []string
		for _, e := range iss.Errors() {
			loc := e.Location
			msgs = append(msgs, fmt.Sprintf("%d:%d: %s", loc.Line(), loc.Column()+1, e.Message))
		}
		return nil, fmt.Errorf("%s", strings.Join(msgs, "; "))
	}
	if wantBool {
		if t := ast.OutputType(); !t.IsExactType(types.BoolType) && !t.IsExactType(types.DynType) {
			return nil, fmt.Errorf("must be a bool expression, not %s", t)
		}
	}
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	// Tracking the cost at run time costs several allocations per evaluation, so it is on
	// only for expressions whose worst case, with every string, list and map as large as a
	// line can make it, could pass the limit (comprehensions, mostly). The others are
	// bounded by the line's size already.
	est, err := env.EstimateCost(ast, sizeEstimator{})
	if err != nil || est.Max > CELCostLimit {
		opts = append(opts, cel.CostLimit(CELCostLimit))
	}
	prg, err := env.Program(ast, opts...)
	if err != nil {
		return nil, err
	}
	return &celExpr{prg: prg}, nil
}

// evalBool evaluates a condition; an error or a non-bool result is an error.
func (e *celExpr) evalBool(act *celRecord) (bool, error) {
	v, _, err := e.prg.Eval(act)
	if err != nil {
		return false, err
	}
	b, ok := v.(types.Bool)
	if !ok {
		return false, fmt.Errorf("condition is %s, not bool", v.Type().(ref.Type).TypeName())
	}
	return bool(b), nil
}

// eval evaluates a value and converts it to what fields hold (see toNative).
func (e *celExpr) eval(act *celRecord) (any, error) {
	v, _, err := e.prg.Eval(act)
	if err != nil {
		return nil, err
	}
	return toNative(v, 0)
}

// maxNativeDepth bounds the nesting of a converted CEL value.
const maxNativeDepth = 32

// toNative converts a CEL value into the kinds fields hold: string, int64, uint64, float64,
// bool, nil, []any, map[string]any; bytes become their base64 text, timestamps RFC 3339 text,
// durations Go duration text. Strings are copied so no field aliases a read buffer.
func toNative(v ref.Val, depth int) (any, error) {
	if depth > maxNativeDepth {
		return nil, fmt.Errorf("value nested deeper than %d", maxNativeDepth)
	}
	switch x := v.(type) {
	case types.String:
		return strings.Clone(string(x)), nil
	case types.Int:
		return int64(x), nil
	case types.Uint:
		return uint64(x), nil
	case types.Double:
		return float64(x), nil
	case types.Bool:
		return bool(x), nil
	case types.Null:
		return nil, nil
	case types.Bytes:
		return base64.StdEncoding.EncodeToString(x), nil
	case types.Timestamp:
		return x.Time.UTC().Format(time.RFC3339Nano), nil
	case types.Duration:
		return x.Duration.String(), nil
	}
	if l, ok := v.(traits.Lister); ok {
		n, _ := l.Size().(types.Int)
		out := make([]any, 0, int(n))
		for i := types.Int(0); i < n; i++ {
			e, err := toNative(l.Get(i), depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		return out, nil
	}
	if m, ok := v.(traits.Mapper); ok {
		out := map[string]any{}
		it := m.Iterator()
		for it.HasNext() == types.True {
			k := it.Next()
			ks, ok := k.(types.String)
			if !ok {
				return nil, fmt.Errorf("map key %v is %s, fields need string keys", k, k.Type().(ref.Type).TypeName())
			}
			e, err := toNative(m.Get(k), depth+1)
			if err != nil {
				return nil, err
			}
			out[strings.Clone(string(ks))] = e
		}
		return out, nil
	}
	if types.IsError(v) {
		return nil, fmt.Errorf("%v", v)
	}
	return nil, fmt.Errorf("a %s cannot be a field value", v.Type().(ref.Type).TypeName())
}
