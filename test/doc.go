// Package test holds repository-wide checks (import boundaries between the
// components, package documentation) and, in its sub-folders, the
// end-to-end, fault and load tests that start real processes. Nothing in the
// product imports it.
package test
