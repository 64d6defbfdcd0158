module steward.dev/hack/realnode/webhook

go 1.24.0
