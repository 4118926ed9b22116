package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veilproxy/veil/proxy/audit"
	"github.com/veilproxy/veil/proxy/notify"
	"github.com/veilproxy/veil/proxy/policy"
	"github.com/veilproxy/veil/proxy/spike"
)

// restrictions are the spike package's restrictions with the count the metrics read.
type restrictions interface {
	spike.Restrictions
	Len() int
}

// minRestrictAdminToken is the shortest bearer token the containment admin API accepts.
const minRestrictAdminToken = 16

// newAlerts wires export-spike detection: the restrictions (always: containment set by an
// admin holds even with detection off), the detector and its notifiers when alerts are on,
// the admin API when its token is set, and their metrics. Background work runs until ctx
// ends. It needs a.policy, a.audit and a.reg.
func (a *app) newAlerts(ctx context.Context, o *buildOptions) error {
	ac := a.cfg.Alerts
	ropts := spike.RestrictionsOptions{Audit: a.auditRestriction}
	var store spike.Store
	if a.redis != nil {
		rr := spike.NewRedisRestrictions(a.redis, "veil", ropts, a.log)
		go func() {
			if err := rr.Run(ctx); err != nil && ctx.Err() == nil {
				a.log.Error("restrictions: refresh stopped", "err", err)
			}
		}()
		a.restrictions = rr
		store = spike.NewRedisStore(a.redis, "veil")
	} else {
		a.restrictions = spike.NewMemoryRestrictions(ropts)
		store = spike.NewMemoryStore(time.Now)
	}
	a.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "veil_restricted_users", Help: "Users restricted by export-spike containment now.",
	}, func() float64 { return float64(a.restrictions.Len()) }))

	tok := o.getenv(ac.AdminTokenEnv)
	if tok != "" {
		if len(tok) < minRestrictAdminToken {
			return fmt.Errorf("alerts: admin token in %s: %d bytes, want at least %d", ac.AdminTokenEnv, len(tok), minRestrictAdminToken)
		}
		a.restrictAdmin = spike.AdminHandler(a.restrictions, spike.BearerAuth(tok), nil)
	}
	if !ac.On() {
		return nil
	}

	deliveries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "veil_alert_deliveries_total", Help: "Alert deliveries to each notifier, by result (ok or error).",
	}, []string{"notifier", "result"})
	alerts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "veil_alerts_total", Help: "Export-spike alerts sent, after dedup, by rule.",
	}, []string{"rule"})
	a.reg.MustRegister(deliveries, alerts)

	targets := make([]notify.Target, 0, len(ac.Notifiers))
	for i, n := range ac.Notifiers {
		where := fmt.Sprintf("alerts.notifiers[%d] (%s)", i, n.Name)
		spec := notify.Spec{Name: n.Name, Type: n.Type, Lang: n.Lang, MinSeverity: n.MinSeverity, Rules: n.Rules, Departments: n.Departments}
		if n.Type != "console" {
			u, err := readSecret(o, n.URLEnv, n.URLFile)
			if err != nil {
				return fmt.Errorf("%s: url: %w", where, err)
			}
			spec.URL = string(u)
		}
		sec, err := readSecret(o, n.SecretEnv, n.SecretFile)
		if err != nil {
			return fmt.Errorf("%s: secret: %w", where, err)
		}
		spec.Secret = string(sec)
		t, err := notify.NewTarget(spec, notify.Options{}, o.alertOut)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		for _, r := range []string{"ok", "error"} {
			deliveries.WithLabelValues(n.Name, r)
		}
		targets = append(targets, t)
	}
	var notifier spike.Notifier
	if len(targets) > 0 {
		d, err := notify.NewDispatcher(targets, notify.DispatcherOptions{
			Logger: a.log,
			OnDelivery: func(target string, ok bool) {
				result := "ok"
				if !ok {
					result = "error"
				}
				deliveries.WithLabelValues(target, result).Inc()
			},
		})
		if err != nil {
			return fmt.Errorf("alerts: %w", err)
		}
		go func() {
			if err := d.Run(ctx); err != nil && ctx.Err() == nil {
				a.log.Error("alerts: dispatcher stopped", "err", err)
			}
		}()
		notifier = d
	}

	rc := &rulesCache{eng: a.policy, log: a.log}
	if _, err := rc.parse(); err != nil {
		return err
	}
	det, err := spike.New(spike.Options{
		Store: store, Rules: rc.get, Notifier: notifier, Restrictions: a.restrictions,
		Logger: a.log, Queue: ac.Queue, Flush: ac.Flush.D(),
		OnAlert: func(rule string) { alerts.WithLabelValues(rule).Inc() },
	})
	if err != nil {
		return fmt.Errorf("alerts: %w", err)
	}
	a.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "veil_alert_events_dropped_total", Help: "Request outcomes the spike detector's queue had no room for.",
		}, func() float64 { return float64(det.Stats().Dropped) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "veil_alert_store_errors_total", Help: "Spike detector flushes lost because the store failed.",
		}, func() float64 { return float64(det.Stats().StoreErrors) }),
	)
	go func() {
		if err := det.Run(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("alerts: detector stopped", "err", err)
		}
	}()
	a.spike = det
	return nil
}

// rulesCache serves data.veil.alerts of the policy in use, parsed once per revision. A
// revision whose rules do not parse keeps the last good rules in force, logged once.
type rulesCache struct {
	eng *policy.Engine
	log interface {
		Error(msg string, args ...any)
	}

	mu    sync.Mutex
	rev   string
	rules spike.Rules
}

// parse reads and parses the rules of the policy in use.
func (c *rulesCache) parse() (spike.Rules, error) {
	return alertRules(c.eng)
}

// get is spike.Options.Rules.
func (c *rulesCache) get() spike.Rules {
	rev := c.eng.Revision()
	c.mu.Lock()
	defer c.mu.Unlock()
	if rev == c.rev {
		return c.rules
	}
	r, err := alertRules(c.eng)
	if err != nil {
		c.log.Error("policy data: data.veil.alerts refused, last good rules stay in force", "revision", rev, "err", err)
		if c.rev == "" {
			r = spike.DefaultRules()
		} else {
			r = c.rules
		}
	}
	c.rev, c.rules = rev, r
	return r
}

// alertRules parses data.veil.alerts of the policy eng has loaded; missing means the defaults.
func alertRules(eng *policy.Engine) (spike.Rules, error) {
	v, err := eng.Data("veil", "alerts")
	if err != nil {
		return spike.Rules{}, err
	}
	if v == nil {
		return spike.DefaultRules(), nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return spike.Rules{}, fmt.Errorf("policy data: data.veil.alerts: %w", err)
	}
	r, err := spike.ParseRules(raw)
	if err != nil {
		return spike.Rules{}, fmt.Errorf("policy data: data.veil.alerts: %w", err)
	}
	return r, nil
}

// auditRestriction writes one containment change to the audit log, synchronously:
// restrictions and releases, by a rule or by an admin, are never left out of it silently.
func (a *app) auditRestriction(kind, user, detail string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rec := &audit.Record{
		Time: time.Now(), RequestID: newRequestID(), User: user, Route: "admin", Path: "/restrictions/" + user,
		System: "veil", Resource: "restrictions", Action: kind, Decision: audit.DecisionAllow, Reason: detail,
		PolicyRevision: a.policy.Revision(),
		Extra:          map[string]string{"event": "containment"},
	}
	if by := detailField(detail, "by"); by != "" {
		rec.Extra["by"] = by
	}
	switch kind {
	case spike.AuditRestrict:
		rec.Method, rec.Status = http.MethodPut, http.StatusOK
	default:
		rec.Method, rec.Status = http.MethodDelete, http.StatusOK
	}
	if err := a.audit.AppendSync(ctx, rec); err != nil {
		a.log.ErrorContext(ctx, "audit: containment change not recorded", "action", kind, "user", user, "err", err)
	}
}

// detailField returns the value of key in a restriction detail (`until=… reason="…" by="…"`),
// unquoted; key must be the detail's last field (by always is).
func detailField(detail, key string) string {
	_, v, ok := strings.Cut(detail, " "+key+"=")
	if !ok {
		v, ok = strings.CutPrefix(detail, key+"=")
	}
	if !ok {
		return ""
	}
	if u, err := strconv.Unquote(v); err == nil {
		return u
	}
	return v
}
