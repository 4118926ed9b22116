package mask_test

import (
	"fmt"
	"os"
	"strings"

	"github.com/veilproxy/veil/proxy/mask"
)

func ExampleCompile() {
	phone, _ := mask.ParseAction("mask:phone")
	plan := mask.Plan{
		Fields: map[string]mask.Action{"phone": phone, "id_card": {Kind: mask.Redact}, "bank_card": {Kind: mask.Drop}},
		Rows:   []mask.RowRule{{Field: "owner_id", Op: "eq", Value: []byte(`"alice"`)}},
		Detect: []string{"phone", "email"},
	}
	layout := mask.Layout{Records: "data", HasRecords: true, ID: "id"}
	prog, err := mask.Compile(plan, layout, mask.Limits{})
	if err != nil {
		fmt.Println(err)
		return
	}
	body := `{"data":[` +
		`{"id":10086,"owner_id":"alice","phone":"13812345678","id_card":"110105199001011232","bank_card":"6228480012345678903","note":"备用 13912345678"},` +
		`{"id":10087,"owner_id":"bob","phone":"13700001111"}` +
		`],"total":2}`
	st, err := prog.Rewrite(os.Stdout, strings.NewReader(body))
	fmt.Println()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("records:", st.Records, "removed:", st.Removed, "ids:", st.IDs)
	fmt.Println("fields:", st.Fields, "detects:", st.Detects)
	// Output:
	// {"data":[{"id":10086,"owner_id":"alice","phone":"138****5678","id_card":"***","note":"备用 139****5678"}],"total":2}
	// records: 1 removed: 1 ids: [10086]
	// fields: map[bank_card:1 id_card:1 phone:1] detects: map[phone:1]
}

func ExampleMaskValue() {
	fmt.Println(mask.MaskValue("phone", "13812345678"))
	fmt.Println(mask.MaskValue("id_card", "110105199001011234"))
	fmt.Println(mask.MaskValue("bank_card", "6222020200112233445"))
	fmt.Println(mask.MaskValue("email", "zhangsan@example.com"))
	fmt.Println(mask.MaskValue("name", "欧阳娜娜"))
	fmt.Println(mask.MaskValue("name", "Maria Anders"))
	fmt.Println(mask.MaskValue("address", "北京市朝阳区建国路88号"))
	fmt.Println(mask.MaskValue("", "+86 138 0013 5521"))
	fmt.Println(mask.MaskValue("generic", "secret"))
	// Output:
	// 138****5678
	// 110105********1234
	// 622202*********3445
	// z***@example.com
	// 欧阳**
	// M*** A***
	// 北京市朝阳区****
	// +86 138 **** 5521
	// s****t
}

func ExampleScan() {
	text, hits := mask.Scan([]string{"phone", "id_card", "bank_card", "email"},
		"手机13812345678，身份证110105199001011232，订单号138123456789")
	fmt.Println(text)
	fmt.Println(hits)
	// Output:
	// 手机138****5678，身份证110105********1232，订单号138123456789
	// map[id_card:1 phone:1]
}
