package mask

import (
	"strings"
	"unicode/utf8"
)

// The "address" detector finds the street part of Chinese addresses in free text: a house
// number ("111号") preceded by a street name (Han characters ending in a street marker such as
// 路, 街, 道, 巷, 弄, 里 or 村) and followed by building, unit and room numbers ("14栋1719室").
// The street and everything after it is replaced with "****"; the administrative prefix
// before it (浙江省杭州市西湖区) is kept, as the address format does for whole values.

const addrMask = "****"

// maxStreetRunes bounds how far back a street name is looked for.
const maxStreetRunes = 16

// streetMarkers end a street name; adminStops end the administrative prefix before it.
const (
	streetMarkers = "路街道巷弄里村"
	adminStops    = "省市区县镇乡旗州"
	unitMarkers   = "栋幢座楼层室单元号户"
	// leadStops end the words that introduce an address in a sentence (送到, 地址, 寄往).
	leadStops = "到至在址往寄"
)

// hao is 号 in UTF-8: the house-number marker an address hit hangs on.
const hao = "号"

func isHan(r rune) bool { return r >= 0x4E00 && r <= 0x9FFF }

// matchStreet tests the digits at s[i:i+run] as a house number. It returns the span of the
// street address around it (street name start, end after any unit and room numbers), or -1.
func matchStreet(s []byte, i, run int) (start, end int) {
	j := i + run
	if !strings.HasPrefix(string(s[j:min(len(s), j+len(hao))]), hao) {
		return -1, 0
	}
	// Back over the street name, which must contain a street marker.
	start, street := i, false
	for n := 0; n < maxStreetRunes && start > 0; n++ {
		r, size := utf8.DecodeLastRune(s[:start])
		if !isHan(r) || strings.ContainsRune(leadStops, r) || strings.ContainsRune(adminStops, r) && street {
			break
		}
		if strings.ContainsRune(streetMarkers, r) {
			street = true
		}
		start -= size
	}
	if !street {
		return -1, 0
	}
	// Forward over "号" and any "14栋", "2单元", "1719室", "B座" that follow.
	end = j + len(hao)
	for {
		k := end
		for k < len(s) && (isDigit(s[k]) || 'A' <= s[k] && s[k] <= 'Z' || 'a' <= s[k] && s[k] <= 'z' || s[k] == '-') {
			k++
		}
		if k == end {
			break
		}
		r, size := utf8.DecodeRune(s[k:])
		if !strings.ContainsRune(unitMarkers, r) {
			break
		}
		end = k + size
		if r == '单' { // 单元
			if r2, size2 := utf8.DecodeRune(s[end:]); r2 == '元' {
				end += size2
			}
		}
	}
	return start, end
}
