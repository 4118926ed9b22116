package mask

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

var allDetectors = []string{"phone", "id_card", "bank_card", "email"}

func TestScan(t *testing.T) {
	tests := []struct {
		name      string
		detectors []string
		in        string
		want      string
		hits      map[string]int
	}{
		{"phone", allDetectors, "电话13812345678谢谢", "电话138****5678谢谢", map[string]int{"phone": 1}},
		{"phone at start and end", allDetectors, "13812345678", "138****5678", map[string]int{"phone": 1}},
		{"phone second digit 2 is not mobile", allDetectors, "12812345678", "12812345678", nil},
		{"12 digits hold no phone", allDetectors, "订单 138123456789", "订单 138123456789", nil},
		{"phone inside a longer run", allDetectors, "x913812345678x", "x913812345678x", nil},
		{"10 digits", allDetectors, "1381234567", "1381234567", nil},
		{"+86 prefix", allDetectors, "+8613812345678", "+86138****5678", map[string]int{"phone": 1}},
		{"86 prefix", allDetectors, "8613812345678", "86138****5678", map[string]int{"phone": 1}},
		{"0086 prefix", allDetectors, "008613812345678", "0086138****5678", map[string]int{"phone": 1}},
		{"+86 space prefix", allDetectors, "+86 138 0013 5521", "+86 138 **** 5521", map[string]int{"phone": 1}},
		{"dashes", allDetectors, "138-0013-5521.", "138-****-5521.", map[string]int{"phone": 1}},
		{"grouped then more digits", allDetectors, "138 0013 55219", "138 0013 55219", nil},
		{"letters around", allDetectors, "tel:13812345678;", "tel:138****5678;", map[string]int{"phone": 1}},
		{"two phones", allDetectors, "13812345678/13912345678", "138****5678/139****5678", map[string]int{"phone": 2}},
		{"phone detector off", []string{"email"}, "13812345678", "13812345678", nil},

		{"id card", allDetectors, "身份证110105199001011232。", "身份证110105********1232。", map[string]int{"id_card": 1}},
		{"id card X", allDetectors, "44030519920811632X", "440305********632X", map[string]int{"id_card": 1}},
		{"id card lower x", allDetectors, "44030519920811632x", "440305********632x", map[string]int{"id_card": 1}},
		{"id card bad checksum", allDetectors, "110105199001011234", "110105199001011234", nil},
		{"id card bad month", []string{"id_card"}, "110105199013011230", "110105199013011230", nil},
		{"id card in longer run", allDetectors, "1101051990010112320", "1101051990010112320", nil},
		{"id card followed by X", allDetectors, "110105199001011232X", "110105199001011232X", nil},

		{"bank card", allDetectors, "卡号6228480012345678903", "卡号622848*********8903", map[string]int{"bank_card": 1}},
		{"bank card 16", allDetectors, "4111111111111111", "411111******1111", map[string]int{"bank_card": 1}},
		{"bank card grouped spaces", allDetectors, "6228 4800 1234 5678 903", "6228 48** **** ***8 903", map[string]int{"bank_card": 1}},
		{"bank card grouped dashes", allDetectors, "4111-1111-1111-1111 ok", "4111-11**-****-1111 ok", map[string]int{"bank_card": 1}},
		{"bank card fails Luhn", allDetectors, "6222020200112233445", "6222020200112233445", nil},
		{"bank card 20 digits", allDetectors, "62284800123456789030", "62284800123456789030", nil},
		{"Luhn-valid but starts with 9", allDetectors, "9007199254740993 9000000000000008", "9007199254740993 9000000000000008", nil},
		{"12 digits Luhn", allDetectors, "411111111116", "411111111116", nil},

		{"email", allDetectors, "mail zhangsan@example.com now", "mail z***@example.com now", map[string]int{"email": 1}},
		{"email digits local part", allDetectors, "13812345678@qq.com", "1***@qq.com", map[string]int{"email": 1}},
		{"email dotted", allDetectors, "a.b-c+d@mail.example.co.uk.", "a***@mail.example.co.uk.", map[string]int{"email": 1}},
		{"email no tld", allDetectors, "user@localhost", "user@localhost", nil},
		{"email numeric tld", allDetectors, "user@10.0.0.1", "user@10.0.0.1", nil},
		{"at sign alone", allDetectors, "@ me", "@ me", nil},
		{"chained addresses", allDetectors, "a.b@c.cc@d.ee", "a***@d.ee", map[string]int{"email": 1}},
		{"address after a stray @", allDetectors, "@17000000000@0.AA", "@1***@0.AA", map[string]int{"email": 1}},
		{"address after a non-address", allDetectors, "x@y@c.com", "x@***@c.com", map[string]int{"email": 1}},
		{"chain through local characters", allDetectors, "0@0.AA%@0.AA", "0***@0.AA", map[string]int{"email": 1}},
		{"email chinese text", allDetectors, "邮箱：li.na@example.cn。", "邮箱：l***@example.cn。", map[string]int{"email": 1}},

		{"chat log", allDetectors,
			"客户：我电话是 13812345678，备用 +86 139-0013-5521，身份证 110105199001011232，卡 6217000123456788，邮箱 li.na@example.cn",
			"客户：我电话是 138****5678，备用 +86 139-****-5521，身份证 110105********1232，卡 621700******6788，邮箱 l***@example.cn",
			map[string]int{"phone": 2, "id_card": 1, "bank_card": 1, "email": 1}},
		{"unknown detector ignored", []string{"passport", "phone"}, "13812345678", "138****5678", map[string]int{"phone": 1}},
		{"nothing", allDetectors, "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, hits := Scan(tt.detectors, tt.in)
			if got != tt.want {
				t.Errorf("Scan(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if diff := cmp.Diff(tt.hits, hits); diff != "" {
				t.Errorf("Scan(%q) hits mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestValidID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"110105199001011232", true},
		{"310104199102285524", true},
		{"44030519920811632X", true},
		{"11010519491231002X", true},
		{"110105199001011234", false},
		{"310104199102285521", false},
		{"110105170001011234", false},
		{"11010519900101123", false},
	}
	for _, tt := range tests {
		if got := validID([]byte(tt.id)); got != tt.want {
			t.Errorf("validID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func TestLuhn(t *testing.T) {
	tests := []struct {
		digits string
		want   bool
	}{
		{"4111111111111111", true},
		{"6228480012345678903", true},
		{"6217000123456788", true},
		{"4111111111111112", false},
		{"6222020200112233445", false},
		{"0", true},
	}
	for _, tt := range tests {
		if got := luhn([]byte(tt.digits)); got != tt.want {
			t.Errorf("luhn(%q) = %v, want %v", tt.digits, got, tt.want)
		}
	}
}
