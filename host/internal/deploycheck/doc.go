// Package deploycheck holds the tests of what deploy/ ships, checked against the
// real binary and the one config model: the Kubernetes base (every manifest
// decoded strictly with the API types; probes, ports, drain, metric names, the
// site file) and the systemd unit (systemd-analyze verify; its drain and paths).
// It has no code of its own: the deployment files are data, this is their test.
package deploycheck
