package mask

import "testing"

func TestScanAddress(t *testing.T) {
	tests := []struct{ in, want string }{
		{"快递到浙江省杭州市西湖区世纪大道111号14栋1719室", "快递到浙江省杭州市西湖区****"},
		{"地址：北京市朝阳区建国路88号", "地址：北京市朝阳区****"},
		{"送到人民南路3号2单元501室，谢谢", "送到****，谢谢"},
		{"上海市浦东新区张江镇祖冲之路B座", "上海市浦东新区张江镇祖冲之路B座"}, // no house number: not an address hit
		{"订单3号已发货", "订单3号已发货"},                   // no street marker
		{"第12号直播间", "第12号直播间"},
	}
	for _, tt := range tests {
		got, _ := Scan([]string{"address"}, tt.in)
		if got != tt.want {
			t.Errorf("Scan(address, %q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	got, n := Scan([]string{"phone", "address"}, "手机13812345678，地址文三路5号")
	if got != "手机138****5678，地址****" || n["address"] != 1 || n["phone"] != 1 {
		t.Errorf("Scan(phone+address) = %q %v", got, n)
	}
}

func TestScanFullWidthDigits(t *testing.T) {
	got, n := Scan([]string{"phone"}, "手机号：１３８１２３４５６７８，谢谢")
	if n["phone"] != 1 || got != "手机号：138****5678，谢谢" {
		t.Errorf("Scan(full-width phone) = %q %v, want 手机号：138****5678，谢谢", got, n)
	}
	if got, n := Scan([]string{"phone"}, "无数字"); got != "无数字" || n != nil {
		t.Errorf("Scan changed text without digits: %q %v", got, n)
	}
}
