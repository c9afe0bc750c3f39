# One image for the manager and the gate: `claiim manager`, `claiim gate`.
# Build: make docker-build IMG=registry.example.com/claiim:v0.1.0

FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first, so source edits don't refetch modules.
COPY go.mod go.sum ./
RUN go mod download
# What ./cmd/claiim imports, and nothing else: no test/ (test/image checks).
COPY cmd/ cmd/
COPY internal/ internal/
COPY api/ api/
COPY controllers/ controllers/
COPY gate/ gate/
# The CRDs and webhook configurations the manager keeps in place (embedded).
COPY config/ config/
# A static binary: no libc in the runtime image.
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/claiim ./cmd/claiim

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/claiim /claiim
# distroless's nonroot user; the chart also sets runAsNonRoot.
USER 65532:65532
ENTRYPOINT ["/claiim"]
