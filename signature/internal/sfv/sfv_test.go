package sfv_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/signature/internal/sfv"
)

// The examples of RFC 8941 Sections 3 and 4, with their strict
// serializations.
func TestParseRFC8941Examples(t *testing.T) {
	tests := []struct {
		name, typ, in, want string
	}{
		// Section 3.1 Lists.
		{"list of tokens", "list", "sugar, tea, rum", "sugar, tea, rum"},
		{"list over lines", "list", "sugar, tea,rum", "sugar, tea, rum"},
		// Section 3.1.1 Inner Lists.
		{"inner lists", "list", `("foo" "bar"), ("baz"), ("bat" "one"), ()`, `("foo" "bar"), ("baz"), ("bat" "one"), ()`},
		{"inner list params", "list", `("foo"; a=1;b=2);lvl=5, ("bar" "baz");lvl=1`, `("foo";a=1;b=2);lvl=5, ("bar" "baz");lvl=1`},
		// Section 3.1.2 Parameters.
		{"list params", "list", `abc;a=1;b=2; cde_456, (ghi;jk=4 l);q="9";r=w`, `abc;a=1;b=2;cde_456, (ghi;jk=4 l);q="9";r=w`},
		{"bare boolean param", "item", `1; a; b=?0`, `1;a;b=?0`},
		// Section 3.2 Dictionaries.
		{"dictionary", "dictionary", `en="Applepie", da=:w4ZibGV0w6ZydGUK:`, `en="Applepie", da=:w4ZibGV0w6ZydGUK:`},
		{"dictionary booleans", "dictionary", `a=?0, b, c; foo=bar`, `a=?0, b, c;foo=bar`},
		{"dictionary inner list", "dictionary", `rating=1.5, feelings=(joy sadness)`, `rating=1.5, feelings=(joy sadness)`},
		{"dictionary mixed", "dictionary", `a=(1 2), b=3, c=4;aa=bb, d=(5 6);valid`, `a=(1 2), b=3, c=4;aa=bb, d=(5 6);valid`},
		{"dictionary duplicate keeps first position, last value", "dictionary", `a=1, b=2, a=3`, `a=3, b=2`},
		// Section 3.3 Items.
		{"item with params", "item", `5; foo=bar`, `5;foo=bar`},
		{"integer", "item", `42`, `42`},
		{"negative zero", "item", `-0`, `0`},
		{"decimal", "item", `4.5`, `4.5`},
		{"decimal trailing zeros", "item", `4.500`, `4.5`},
		{"decimal zero", "item", `-0.0`, `0.0`},
		{"string", "item", `"hello world"`, `"hello world"`},
		{"string escapes", "item", `"a \"b\" \\c"`, `"a \"b\" \\c"`},
		{"token", "item", `foo123/456`, `foo123/456`},
		{"byte sequence", "item", `:cHJldGVuZCB0aGlzIGlzIGJpbmFyeSBjb250ZW50Lg==:`, `:cHJldGVuZCB0aGlzIGlzIGJpbmFyeSBjb250ZW50Lg==:`},
		{"byte sequence without padding", "item", `:cHJldGVuZCB0aGlzIGlzIGJpbmFyeSBjb250ZW50Lg:`, `:cHJldGVuZCB0aGlzIGlzIGJpbmFyeSBjb250ZW50Lg==:`},
		{"boolean", "item", `?1`, `?1`},
		{"leading and trailing spaces", "item", `  1  `, `1`},
		// RFC 9421 Section 2.1.1: strict serialization of a dictionary.
		{"rfc9421 example-dict", "dictionary", `a=1,    b=2;x=1;y=2,   c=(a   b   c)`, `a=1, b=2;x=1;y=2, c=(a b c)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := roundTrip(tc.typ, tc.in)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func roundTrip(typ, in string) (string, error) {
	switch typ {
	case "item":
		it, err := sfv.ParseItem(in)
		if err != nil {
			return "", err
		}
		return sfv.MarshalItem(it)
	case "list":
		l, err := sfv.ParseList(in)
		if err != nil {
			return "", err
		}
		return sfv.MarshalList(l)
	case "inner":
		il, err := sfv.ParseInnerList(in)
		if err != nil {
			return "", err
		}
		return sfv.MarshalInnerList(il)
	default:
		d, err := sfv.ParseDictionary(in)
		if err != nil {
			return "", err
		}
		return sfv.MarshalDictionary(d)
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct{ name, typ, in string }{
		{"trailing comma", "list", "a, b,"},
		{"empty member", "list", "a,,b"},
		{"unterminated inner list", "list", "(a b"},
		{"inner list separator", "list", "(a,b)"},
		{"integer too long", "item", "1234567890123456"},
		{"decimal int part too long", "item", "1234567890123.5"},
		{"decimal fraction too long", "item", "1.2345"},
		{"decimal ends in dot", "item", "1."},
		{"double minus", "item", "--1"},
		{"unterminated string", "item", `"abc`},
		{"bad escape", "item", `"a\b"`},
		{"control in string", "item", "\"a\tb\""},
		{"non-ascii in string", "item", "\"caf\xc3\xa9\""},
		{"unterminated bytes", "item", ":YWJj"},
		{"bad base64", "item", ":YW*j:"},
		{"misplaced padding", "item", ":Y=Jj:"},
		{"bad boolean", "item", "?2"},
		{"uppercase key", "dictionary", "A=1"},
		{"key starts with digit", "dictionary", "1a=1"},
		{"two items", "item", "1 2"},
		{"tab before item", "item", "\t1"},
		{"empty param key", "item", "1;=2"},
		{"dictionary trailing comma", "dictionary", "a=1,"},
		{"empty item", "item", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := roundTrip(tc.typ, tc.in)
			require.ErrorIs(t, err, sfv.ErrSyntax)
		})
	}
}

func TestEmptyListAndDictionary(t *testing.T) {
	l, err := sfv.ParseList("")
	require.NoError(t, err)
	assert.Empty(t, l)
	d, err := sfv.ParseDictionary("  ")
	require.NoError(t, err)
	assert.Empty(t, d)
}

func TestParseDictionaryUniqueKeys(t *testing.T) {
	_, err := sfv.ParseDictionaryUniqueKeys(`sig1=:YQ==:, sig2=:Yg==:`)
	require.NoError(t, err)
	_, err = sfv.ParseDictionaryUniqueKeys(`sig1=:YQ==:, sig1=:Yg==:`)
	require.ErrorIs(t, err, sfv.ErrDuplicateKey)
}

func TestValues(t *testing.T) {
	it, err := sfv.ParseItem(`-12.05;a="x";b=tok;c=:AQI=:;d=?0;e=7`)
	require.NoError(t, err)
	assert.Equal(t, sfv.DecimalMilli(-12050), it.Value)
	a, ok := it.Params.Get("a")
	require.True(t, ok)
	assert.Equal(t, sfv.String("x"), a)
	b, _ := it.Params.Get("b")
	assert.Equal(t, sfv.Token("tok"), b)
	c, _ := it.Params.Get("c")
	assert.Equal(t, []byte{1, 2}, c.Bytes)
	d, _ := it.Params.Get("d")
	assert.False(t, d.IsTrue())
	e, _ := it.Params.Get("e")
	assert.Equal(t, sfv.Integer(7), e)
	_, ok = it.Params.Get("zz")
	assert.False(t, ok)

	dict, err := sfv.ParseDictionary(`a=(1 2);p, b`)
	require.NoError(t, err)
	m, ok := dict.Get("a")
	require.True(t, ok)
	assert.True(t, m.IsInnerList)
	assert.Len(t, m.Inner.Items, 2)
	_, hasP := m.Params().Get("p")
	assert.True(t, hasP)
	bm, _ := dict.Get("b")
	assert.True(t, bm.Item.Value.IsTrue())
}

func TestSerializeRejects(t *testing.T) {
	bad := []sfv.Item{
		{Value: sfv.Integer(sfv.MaxInteger + 1)},
		{Value: sfv.DecimalMilli(sfv.MaxDecimalMilli + 1)},
		{Value: sfv.String("line\nbreak")},
		{Value: sfv.Token("1abc")},
		{Value: sfv.Token("")},
		{Value: sfv.Integer(1), Params: sfv.Params{{Key: "Upper", Value: sfv.Boolean(true)}}},
		{},
	}
	for _, it := range bad {
		_, err := sfv.MarshalItem(it)
		require.ErrorIs(t, err, sfv.ErrInvalidValue, "%+v", it)
	}
	_, err := sfv.MarshalDictionary(sfv.Dictionary{{Key: "", Value: sfv.ItemMember(sfv.Item{Value: sfv.Integer(1)})}})
	require.ErrorIs(t, err, sfv.ErrInvalidValue)
}

func TestSerializeConstructed(t *testing.T) {
	d := sfv.Dictionary{
		{Key: "sig1", Value: sfv.InnerListMember(sfv.InnerList{
			Items:  []sfv.Item{{Value: sfv.String("@method")}, {Value: sfv.String("@query-param"), Params: sfv.Params{{Key: "name", Value: sfv.String("Pet")}}}},
			Params: sfv.Params{{Key: "created", Value: sfv.Integer(1618884473)}, {Key: "keyid", Value: sfv.String("k")}},
		})},
		{Key: "flag", Value: sfv.ItemMember(sfv.Item{Value: sfv.Boolean(true), Params: sfv.Params{{Key: "x", Value: sfv.DecimalMilli(2500)}}})},
		{Key: "b", Value: sfv.ItemMember(sfv.Item{Value: sfv.ByteSequence([]byte("hi"))})},
	}
	s, err := sfv.MarshalDictionary(d)
	require.NoError(t, err)
	assert.Equal(t, `sig1=("@method" "@query-param";name="Pet");created=1618884473;keyid="k", flag;x=2.5, b=:aGk=:`, s)
	l, err := sfv.MarshalList(sfv.List{sfv.ItemMember(sfv.Item{Value: sfv.Token("a")}), sfv.ItemMember(sfv.Item{Value: sfv.Boolean(false)})})
	require.NoError(t, err)
	assert.Equal(t, "a, ?0", l)
	assert.Equal(t, "byte sequence", sfv.TypeByteSequence.String())
}

func TestParseInnerList(t *testing.T) {
	got, err := roundTrip("inner", `("@method"   "@path");created=1;keyid="a"`)
	require.NoError(t, err)
	assert.Equal(t, `("@method" "@path");created=1;keyid="a"`, got)
	_, err = sfv.ParseInnerList(`"@method"`)
	require.ErrorIs(t, err, sfv.ErrSyntax)
}
