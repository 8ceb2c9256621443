#!/usr/bin/env bash
# Branch deployments and dagster-branch cleanup from any CI, with the dagster-cloud CLI.
#
#   ci/dagster-cloud-cli.sh deploy  <pr-number> <image>   create or update the PR's branch
#                                                         deployment and point it at <image>
#   ci/dagster-cloud-cli.sh close   <pr-number> [merged|closed]
#                                                         mark the branch deployment closed
#   ci/dagster-cloud-cli.sh cleanup <pr-number>           launch `branch_cleanup` in production
#                                                         for pr_<number> (and nothing else)
#
# Environment (set them as CI secrets/variables):
#   DAGSTER_CLOUD_ORGANIZATION   required: your organization (https://<org>.dagster.cloud)
#   DAGSTER_CLOUD_API_TOKEN      required: an agent or user token (read by dagster-cloud itself)
#   DAGSTER_CLOUD_DEPLOYMENT     the full deployment (default: prod)
#   DAGSTER_CLOUD_LOCATION       the code location (default: example_project)
#   GIT_REPO_NAME, GIT_BRANCH, GIT_COMMIT   deploy/close: repository ('owner/repo'), branch and
#                                commit (default: read from the checkout with git)
#   PULL_REQUEST_URL             deploy: link shown in Dagster+ (optional)
#   DAGSTER_BRANCH_CI_DRY_RUN=1  print the dagster-cloud commands instead of running them
#
# Exit codes: 0 done, 1 dagster-cloud failed, 2 bad arguments or missing variables.
set -euo pipefail

DEPLOYMENT="${DAGSTER_CLOUD_DEPLOYMENT:-prod}"
LOCATION="${DAGSTER_CLOUD_LOCATION:-example_project}"
JOB="${DAGSTER_BRANCH_CLEANUP_JOB:-branch_cleanup}"

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

fail() {
    echo "dagster-cloud-cli.sh: $*" >&2
    exit 2
}

require() {
    for name in "$@"; do
        [ -n "${!name:-}" ] || fail "$name is not set: set it in the CI's variables (see the header of $0)."
    done
}

pr_number() {
    [[ "${1:-}" =~ ^[1-9][0-9]{0,11}$ ]] || fail "'${1:-}' is not a pull request number (expected e.g. 42)."
    echo "$1"
}

# Run dagster-cloud, or print the command (quoted, token-free) when DAGSTER_BRANCH_CI_DRY_RUN=1.
dagster_cloud() {
    if [ "${DAGSTER_BRANCH_CI_DRY_RUN:-}" = "1" ]; then
        printf 'dagster-cloud'
        printf ' %q' "$@"
        printf '\n'
        return 0
    fi
    dagster-cloud "$@" || exit 1
}

git_or() {  # git_or <variable> <git args...>: the variable's value, else git's answer
    local name="$1" value="${!1:-}"
    shift
    [ -n "$value" ] || value="$(git "$@" 2>/dev/null || true)"
    [ -n "$value" ] || fail "$name is not set and git could not tell it: set $name."
    echo "$value"
}

create_or_update() {  # create_or_update <pr> <status>: prints the branch deployment's name
    local pr="$1" status="$2" repo branch commit
    repo="$(git_or GIT_REPO_NAME config --get remote.origin.url)"
    repo="$(echo "$repo" | sed -E 's#(\.git)?$##; s#^.*[:/]([^/]+/[^/]+)$#\1#')"
    branch="$(git_or GIT_BRANCH rev-parse --abbrev-ref HEAD)"
    commit="$(git_or GIT_COMMIT rev-parse HEAD)"
    dagster_cloud branch-deployment create-or-update \
        --git-repo-name "$repo" --branch-name "$branch" --commit-hash "$commit" \
        --timestamp "$(date +%s)" --code-review-id "$pr" --pull-request-status "$status" \
        ${PULL_REQUEST_URL:+--code-review-url "$PULL_REQUEST_URL"} \
        --base-deployment-name "$DEPLOYMENT"
}

command="${1:-}"
[ -n "$command" ] || usage
shift

case "$command" in
    deploy)
        [ $# -eq 2 ] || usage
        require DAGSTER_CLOUD_ORGANIZATION
        pr="$(pr_number "$1")"
        image="$2"
        name="$(create_or_update "$pr" OPEN)"
        if [ "${DAGSTER_BRANCH_CI_DRY_RUN:-}" = "1" ]; then
            echo "$name"
            name="<branch-deployment>"
        fi
        dagster_cloud deployment add-location --deployment "$name" \
            --location-file dagster_cloud.yaml --location-name "$LOCATION" --image "$image"
        ;;
    close)
        [ $# -ge 1 ] && [ $# -le 2 ] || usage
        require DAGSTER_CLOUD_ORGANIZATION
        pr="$(pr_number "$1")"
        case "${2:-closed}" in
            merged) status=MERGED ;;
            closed) status=CLOSED ;;
            *) fail "the state must be 'merged' or 'closed', not '${2}'." ;;
        esac
        create_or_update "$pr" "$status"
        ;;
    cleanup)
        [ $# -eq 1 ] || usage
        require DAGSTER_CLOUD_ORGANIZATION
        namespace="pr_$(pr_number "$1")"
        # The job runs in the full deployment with its own credentials, and asks the Git host
        # again before removing anything: a PR reopened meanwhile is left alone.
        dagster_cloud job launch --deployment "$DEPLOYMENT" --location "$LOCATION" --job "$JOB" \
            --config-json "{\"ops\": {\"plan\": {\"config\": {\"namespace\": \"$namespace\"}}}}" \
            --tags "{\"dagster-branch/namespace\": \"$namespace\", \"dagster-branch/trigger\": \"ci-close\"}"
        ;;
    -h|--help|help)
        usage
        ;;
    *)
        fail "unknown command '$command': use deploy, close or cleanup."
        ;;
esac
