// Package redteam is Veil's red-team suite: every attack of REDTEAM.md, and the variants an
// attacker would try next, driven against a real Veil handler over real connections with a
// leak oracle on every response; it holds tests only.
package redteam
