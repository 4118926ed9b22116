# syntax=docker/dockerfile:1
# Multi-stage build: a static binary on distroless, running as non-root with a read-only root
# filesystem (mount a volume for the audit log; see deploy/).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/veil ./cmd/veil

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/veil /usr/local/bin/veil
COPY policies /etc/veil/policies
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/veil"]
CMD ["serve", "-c", "/etc/veil/veil.yaml"]
