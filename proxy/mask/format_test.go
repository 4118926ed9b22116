package mask

import (
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestMaskValue(t *testing.T) {
	tests := []struct {
		format, in, want string
	}{
		// phone
		{"phone", "13812345678", "138****5678"},
		{"phone", "+86 13812345678", "+86 138****5678"},
		{"phone", "+86 138 0013 5521", "+86 138 **** 5521"},
		{"phone", "+8613812345678", "+86138****5678"},
		{"phone", "008613812345678", "0086138****5678"},
		{"phone", "8613812345678", "86138****5678"},
		{"phone", "138-0013-5521", "138-****-5521"},
		{"phone", "030-0074321", "030-***4321"},
		{"phone", "+1 415 555 0132", "+1 41* *** 0132"},
		{"phone", "(5) 555-4729", "(5) 5**-**29"},
		{"phone", "12345", "1***5"},
		{"phone", "n/a", "n*a"},
		{"phone", "", ""},
		// id_card
		{"id_card", "110105199001011234", "110105********1234"},
		{"id_card", "44030519920811632X", "440305********632X"},
		{"id_card", "110105900101123", "110105******123"},
		{"id_card", "123-45-6789", "1*********9"},
		// bank_card
		{"bank_card", "6222020200112233445", "622202*********3445"},
		{"bank_card", "6222 0202 0011 2233 445", "6222 02** **** ***3 445"},
		{"bank_card", "4111-1111-1111-1111", "4111-11**-****-1111"},
		{"bank_card", "12345", "1***5"},
		// email
		{"email", "zhangsan@example.com", "z***@example.com"},
		{"email", "a@example.com", "***@example.com"},
		{"email", "张三@例子.cn", "张***@例子.cn"},
		{"email", "not an email", "n**********l"},
		{"email", "trailing@", "t*******@"},
		// name
		{"name", "张三丰", "张**"},
		{"name", "欧阳娜娜", "欧阳**"},
		{"name", "司马相如", "司马**"},
		{"name", "李娜", "李*"},
		{"name", "欧阳", "欧*"},
		{"name", "王", "*"},
		{"name", "Maria Anders", "M*** A***"},
		{"name", "  Madonna ", "M***"},
		{"name", "J R", "J*R"},
		// address
		{"address", "北京市朝阳区建国路88号", "北京市朝阳区****"},
		{"address", "广东省深圳市南山区科技园南区1栋", "广东省深圳市南山区****"},
		{"address", "深圳市南山区科技园南区", "深圳市南山区****"},
		{"address", "上海市浦东新区世纪大道 100 号, 12F", "上海市浦东新区****"},
		{"address", "内蒙古自治区呼和浩特市新城区", "内蒙古自治区呼和浩特市****"},
		{"address", "北京市朝阳区", "北京市****"},
		{"address", "济南市市中区经四路", "济南市市中区****"},
		{"address", "415 Mission St, San Francisco", "****, San Francisco"},
		{"address", "Obere Str. 57", "O***********7"},
		{"address", "上海", "上*"},
		// generic and unknown formats
		{"generic", "abcdef", "a****f"},
		{"generic", "ab", "a*"},
		{"generic", "a", "*"},
		{"generic", "", ""},
		{"generic", "王小明", "王*明"},
		{"no-such-format", "secret", "s****t"},
		// inferred
		{"", "13812345678", "138****5678"},
		{"", "+86 138 0013 5521", "+86 138 **** 5521"},
		{"", "110105199001011232", "110105********1232"},
		{"", "6228480012345678903", "622848*********8903"},
		{"", "6222020200112233445", "622************3445"}, // fails Luhn: a long phone-like number
		{"", "030-0074321", "030-***4321"},
		{"", "zhangsan@example.com", "z***@example.com"},
		{"", "15000.00", "1******0"},
		{"", "Maria", "M***a"},
	}
	for _, tt := range tests {
		if got := MaskValue(tt.format, tt.in); got != tt.want {
			t.Errorf("MaskValue(%q, %q) = %q, want %q", tt.format, tt.in, got, tt.want)
		}
	}
}

// TestMaskValueHides checks the promise every format makes: a non-empty value never comes
// back unchanged, and short values lose at least half of their runes.
func TestMaskValueHides(t *testing.T) {
	values := []string{
		"a", "ab", "abc", "abcd", "王", "王五", "12", "123", "1234567", "a@b", "x@y.z", "A B", "A B C",
		"北京", "北京市", "13812345678", "+86", "86", "0086", "----", "  ", "@", "(1)",
	}
	for _, f := range []string{"", "phone", "id_card", "bank_card", "email", "name", "address", "generic"} {
		for _, v := range values {
			got := MaskValue(f, v)
			if got == v && v != "" && !allStars(v) {
				t.Errorf("MaskValue(%q, %q) = %q, the value unchanged", f, v, got)
			}
			n := utf8.RuneCountInString(v)
			if n >= 2 && n <= 4 && hiddenRunes(v, got) < n/2 {
				t.Errorf("MaskValue(%q, %q) = %q, hides fewer than half of %d runes", f, v, got, n)
			}
		}
	}
}

func allStars(s string) bool {
	for _, r := range s {
		if r != '*' {
			return false
		}
	}
	return true
}

// hiddenRunes counts the runes of in that are not shown at their place in out.
func hiddenRunes(in, out string) int {
	a, b := []rune(in), []rune(out)
	n := 0
	for i, r := range a {
		if i >= len(b) || b[i] != r {
			n++
		}
	}
	return n
}

func TestParseAction(t *testing.T) {
	tests := []struct {
		in      string
		want    Action
		wantErr bool
	}{
		{in: "keep", want: Action{Kind: Keep}},
		{in: "mask", want: Action{Kind: Mask}},
		{in: "mask:phone", want: Action{Kind: Mask, Format: "phone"}},
		{in: "mask:id_card", want: Action{Kind: Mask, Format: "id_card"}},
		{in: "mask:bank_card", want: Action{Kind: Mask, Format: "bank_card"}},
		{in: "mask:email", want: Action{Kind: Mask, Format: "email"}},
		{in: "mask:name", want: Action{Kind: Mask, Format: "name"}},
		{in: "mask:address", want: Action{Kind: Mask, Format: "address"}},
		{in: "mask:generic", want: Action{Kind: Mask, Format: "generic"}},
		{in: "redact", want: Action{Kind: Redact}},
		{in: "hash", want: Action{Kind: Hash}},
		{in: "drop", want: Action{Kind: Drop}},
		{in: "null", want: Action{Kind: Null}},
		{in: "deny", want: Action{Kind: Deny}},
		{in: "", wantErr: true},
		{in: "MASK", wantErr: true},
		{in: "mask:", wantErr: true},
		{in: "mask:passport", wantErr: true},
		{in: "redact:phone", wantErr: true},
		{in: "allow", wantErr: true},
		{in: " keep", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseAction(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseAction(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseAction(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if err == nil && got.String() != tt.in {
			t.Errorf("ParseAction(%q).String() = %q, want %q", tt.in, got.String(), tt.in)
		}
	}
}

func TestFold(t *testing.T) {
	tests := []struct{ a, b string }{
		{"Phone", "phone"},
		{"PHONE", "pHoNe"},
		{"\u212Aunde", "kunde"}, // Kelvin sign
		{"ΤΗΛΈΦΩΝΟ", "τηλέφωνο"},
		{"ſtreet", "STREET"}, // long s
		{"手机号", "手机号"},
	}
	for _, tt := range tests {
		if fold(tt.a) != fold(tt.b) {
			t.Errorf("fold(%q) = %q, fold(%q) = %q, want equal", tt.a, fold(tt.a), tt.b, fold(tt.b))
		}
	}
	if fold("phone") == fold("phones") {
		t.Errorf("fold(phone) = fold(phones)")
	}
}

func TestCanonicalNumber(t *testing.T) {
	groups := [][]string{
		{"1", "1.0", "10e-1", "0.1e1", "1E0", "100e-2", "1.000"},
		{"0", "-0", "0.0", "0e5", "-0.0e-3"},
		{"150", "1.5e2", "15e1", "150.00"},
		{"-2.5", "-25e-1"},
		{"9007199254740993"},
		{"9007199254740992"},
		{"0.0123", "1.23e-2"},
	}
	canon := func(s string) string { return string(appendCanonicalNumber(nil, []byte(s))) }
	for i, g := range groups {
		for _, s := range g {
			if canon(s) != canon(g[0]) {
				t.Errorf("canonical(%q) = %q, canonical(%q) = %q, want equal", s, canon(s), g[0], canon(g[0]))
			}
			for j, other := range groups {
				if j != i && canon(s) == canon(other[0]) {
					t.Errorf("canonical(%q) = canonical(%q) = %q, want different", s, other[0], canon(s))
				}
			}
		}
	}
	if diff := cmp.Diff("x1e9999999999999999999", canon("1e9999999999999999999")); diff != "" {
		t.Errorf("canonical of a huge exponent (-want +got):\n%s", diff)
	}
}
