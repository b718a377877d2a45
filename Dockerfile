# syntax=docker/dockerfile:1
# The worker image (ghcr.io/qwenops/worker): the Temporal workers and the qwenops CLI.
# k8s/base/workers.yaml runs it, one Deployment per task queue, each overriding the command
# (node --enable-source-maps dist/workers/<queue>.js).
#
# Base image pinned by digest. The digest below is not verified here (no registry and no
# container engine in the development environment): the release process must refresh it
# (`docker buildx imagetools inspect node:20-bookworm-slim`) and may override it with
# --build-arg NODE_IMAGE=node:20-bookworm-slim@sha256:<digest>.
ARG NODE_IMAGE=node:20-bookworm-slim@sha256:2cf067cfed83d5ea958367df9f966191a942351a2df77d6f0193e162b5febfc0

# Build: every dependency (TypeScript included), then `npm run build` (tsc -p
# tsconfig.build.json -> dist/). The workflows are not prebundled: the default-queue worker
# bundles dist/workflows at start (workflowsPath in workers/run.ts), in memory.
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY workflows ./workflows
COPY activities ./activities
COPY workers ./workers
COPY bench ./bench
COPY scripts ./scripts
# scripts/record-histories.ts imports test/support, so tsc compiles it too (not shipped).
COPY test/support ./test/support
RUN npm run build

# Runtime: production dependencies only, the compiled dist/ and the data files the code reads
# relative to the install root (src/runtime/entrypoints.ts repoRoot: /opt/qwenops).
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /opt/qwenops
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist ./dist
COPY bin ./bin
COPY samples ./samples
COPY jobs/qwenops_jobs/data ./jobs/qwenops_jobs/data
COPY k8s/base/job-templates ./k8s/base/job-templates
# The Worker Versioning build id (workers/versioning.ts): <package version>+<commit>.
ARG QWENOPS_GIT_COMMIT=""
ENV QWENOPS_GIT_COMMIT=${QWENOPS_GIT_COMMIT}
# Files stay root-owned and read-only to the process (the Deployments mount the root
# filesystem read-only; /tmp is an emptyDir). Numeric uid: it must equal runAsUser in
# k8s/base/workers.yaml (10001) so runAsNonRoot can be checked without /etc/passwd.
USER 10001:10001
EXPOSE 9464
# Kubernetes ignores HEALTHCHECK: there the readiness and liveness probes of
# k8s/base/workers.yaml (GET /metrics on the `metrics` port, 9464) do this job. This one is
# for `docker run`, with QWENOPS_METRICS_ADDRESS=0.0.0.0:9464 (the default listens on
# 127.0.0.1:9464, which this check also reaches).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9464/metrics').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Every task queue in one process; each Deployment overrides this with its own worker.
CMD ["node", "--enable-source-maps", "dist/workers/all-in-one.js"]
