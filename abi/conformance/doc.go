// Package conformance is the ABI conformance suite (tests only): one table of HTTP
// scenarios run through the real server against every guest implementation of the
// same app, so the spec (abi/SPEC.md), not one SDK, is what is tested. See README.md.
package conformance
