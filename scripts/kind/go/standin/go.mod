module keda-conformance/kind/standin

go 1.24.0
