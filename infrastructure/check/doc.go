// Package check holds the offline checks of the deployment files: the compose
// file against the README's contract, the Terraform files' consistency (the
// fallback when terraform itself is missing), and the Dockerfiles' build
// steps, exercised with the same go build flags the images use, and the NATS
// users both deployments ship (nats-users.conf), run against nats-server to
// prove each service may do what it does and nothing else. Everything is
// in its tests; `make infra-check` and `make test` run them.
package check
