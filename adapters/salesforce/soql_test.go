package salesforce

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParseSOQL(t *testing.T) {
	tests := []struct {
		soql string
		want query
	}{
		{"SELECT Id, Name FROM Contact", query{Object: "Contact", Fields: []string{"Id", "Name"}}},
		{"select id from contact c where c.name = 'O''Brien' limit 10",
			query{Object: "contact", Fields: []string{"id"}, Limit: 10}},
		{"SELECT Id FROM Contact WHERE Name = 'a) LIMIT 5 (' LIMIT 7", query{Object: "Contact", Fields: []string{"Id"}, Limit: 7}},
		{"SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact LIMIT 3)", query{Object: "Account", Fields: []string{"Id"}}},
		{"SELECT Name, (SELECT Email, Owner.Phone FROM Contacts LIMIT 2) FROM Account LIMIT 20",
			query{Object: "Account", Fields: []string{"Name", "Contacts.Email", "Contacts.Owner.Phone"}, Limit: 20}},
		{"SELECT COUNT(Id), MAX(MobilePhone) top, MIN(Email) FROM Contact GROUP BY LeadSource",
			query{Object: "Contact", Fields: []string{"Id", "MobilePhone", "Email"}, Aliases: map[string]string{"expr0": "Id", "top": "MobilePhone", "expr1": "Email"}}},
		{"SELECT toLabel(Status), FORMAT(Amount) amt FROM Opportunity",
			query{Object: "Opportunity", Fields: []string{"Status", "Amount"}, Aliases: map[string]string{"amt": "Amount"}}},
		{"SELECT TYPEOF What WHEN Account THEN Phone ELSE Name END, Id FROM Event",
			query{Object: "Event", Fields: []string{"What", "Id"}}},
		{"SELECT FIELDS(ALL) FROM Contact LIMIT 200", query{Object: "Contact", Limit: 200}},
		{"SELECT Id FROM Contact WHERE CreatedDate = LAST_N_DAYS:30 AND Amount > 10.5", query{Object: "Contact", Fields: []string{"Id"}}},
	}
	for _, tt := range tests {
		got, err := parseSOQL(tt.soql)
		if err != nil {
			t.Errorf("parseSOQL(%q) error: %v", tt.soql, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("parseSOQL(%q) (-want +got):\n%s", tt.soql, diff)
		}
	}
	for _, bad := range []string{"", "Id FROM Contact", "SELECT FROM Contact", "SELECT Id", "SELECT Id FROM", "SELECT Id, FROM Contact",
		"SELECT Id FROM Contact LIMIT x", "SELECT Id FROM Contact)", "SELECT (SELECT (SELECT (SELECT Id FROM A) FROM B) FROM C) FROM D",
		"SELECT Id FROM Contact WHERE Name = 'x", "SELECT MAX(Phone FROM Contact"} {
		if q, err := parseSOQL(bad); err == nil {
			t.Errorf("parseSOQL(%q) = %+v, want an error", bad, q)
		}
	}
}

func FuzzParseSOQL(f *testing.F) {
	f.Add("SELECT Id, (SELECT Email FROM Contacts) FROM Account WHERE Name = 'x' LIMIT 5")
	f.Add("SELECT MAX(Phone) p FROM Contact")
	f.Fuzz(func(t *testing.T, s string) {
		q, err := parseSOQL(s)
		if err == nil && q.Object == "" {
			t.Errorf("parseSOQL(%q) = no object and no error", s)
		}
	})
}
