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
# Environment (set them as CI secrets/variables; tested with dagster-cloud-cli 1.13.27):
#   DAGSTER_CLOUD_ORGANIZATION   your organization (https://<org>.dagster.cloud), or
#   DAGSTER_CLOUD_URL            the organization's URL when it is not that one
#   DAGSTER_CLOUD_API_TOKEN      required: an agent or user token (read by dagster-cloud itself)
#   DAGSTER_CLOUD_DEPLOYMENT     the full deployment (default: prod)
#   DAGSTER_CLOUD_LOCATION       the code location (default: example_project)
#   deploy/close read the branch from the CI system's variables (docs/ci-dagster-cloud-cli.md;
#   GIT_BRANCH_NAME overrides them), the repository from GITHUB_REPOSITORY, CI_PROJECT_NAME,
#   BITBUCKET_REPO_FULL_NAME or the origin remote (GIT_REPO_NAME overrides them), and the
#   commit and its time from git (GIT_COMMIT overrides the checked-out commit).
#   PULL_REQUEST_URL             deploy/close: link shown in Dagster+ (optional)
#   DAGSTER_BRANCH_CI_DRY_RUN=1  print the dagster-cloud commands instead of running them
#
# Exit codes: 0 done, 1 dagster-cloud failed, 2 bad arguments or missing variables.
set -euo pipefail
shopt -s inherit_errexit  # a failure inside "$(...)" stops the script too

DEPLOYMENT="${DAGSTER_CLOUD_DEPLOYMENT:-prod}"
LOCATION="${DAGSTER_CLOUD_LOCATION:-example_project}"
JOB="${DAGSTER_BRANCH_CLEANUP_JOB:-branch_cleanup}"

# Each CI system's variable for the branch a pull request builds, first match wins (a detached
# checkout, which most CI systems make, has no branch for git to tell).
BRANCH_VARIABLES=(
    GIT_BRANCH_NAME                                             # set by you
    GITHUB_HEAD_REF GITHUB_REF_NAME                             # GitHub Actions
    CI_MERGE_REQUEST_SOURCE_BRANCH_NAME CI_COMMIT_BRANCH        # GitLab CI
    CIRCLE_BRANCH                                               # CircleCI
    BUILDKITE_BRANCH                                            # Buildkite
    CHANGE_BRANCH BRANCH_NAME GIT_BRANCH                        # Jenkins
    BITBUCKET_BRANCH                                            # Bitbucket Pipelines
    SYSTEM_PULLREQUEST_SOURCEBRANCH BUILD_SOURCEBRANCH          # Azure Pipelines
    TRAVIS_PULL_REQUEST_BRANCH TRAVIS_BRANCH                    # Travis CI
    CODEBUILD_WEBHOOK_HEAD_REF                                  # AWS CodeBuild
)

usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

fail() {
    echo "dagster-cloud-cli.sh: $*" >&2
    exit 2
}

pr_number() {
    [[ "${1:-}" =~ ^[1-9][0-9]{0,11}$ ]] || fail "'${1:-}' is not a pull request number (expected e.g. 42)."
    echo "$1"
}

organization_url() {
    if [ -n "${DAGSTER_CLOUD_URL:-}" ]; then
        echo "${DAGSTER_CLOUD_URL%/}"
    elif [ -n "${DAGSTER_CLOUD_ORGANIZATION:-}" ]; then
        echo "https://${DAGSTER_CLOUD_ORGANIZATION}.dagster.cloud"
    else
        fail "DAGSTER_CLOUD_ORGANIZATION is not set: set it (or DAGSTER_CLOUD_URL) in the CI's variables (see the header of $0)."
    fi
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

ci_branch() {
    local name value
    for name in "${BRANCH_VARIABLES[@]}"; do
        value="${!name:-}"
        [ -n "$value" ] || continue
        value="${value#refs/heads/}"                       # Azure Pipelines, AWS CodeBuild
        [ "$name" != GIT_BRANCH ] || value="${value#origin/}"  # Jenkins' git plugin
        echo "$value"
        return 0
    done
    fail "no CI variable names the pull request's branch (looked at ${BRANCH_VARIABLES[*]}): set GIT_BRANCH_NAME to it (see docs/ci-dagster-cloud-cli.md)."
}

ci_repository() {
    local value="${GIT_REPO_NAME:-${GITHUB_REPOSITORY:-${CI_PROJECT_NAME:-${BITBUCKET_REPO_FULL_NAME:-}}}}"
    [ -n "$value" ] || value="$(git config --get remote.origin.url 2>/dev/null || true)"
    [ -n "$value" ] || fail "the repository is unknown: set GIT_REPO_NAME to 'owner/repo'."
    echo "$value" | sed -E 's#(\.git)?$##; s#^.*[:/]([^/]+/[^/]+)$#\1#'
}

create_or_update() {  # create_or_update <pr> <status>: prints the branch deployment's name
    local pr="$1" status="$2" url repo branch commit timestamp
    url="$(organization_url)"
    repo="$(ci_repository)"
    branch="$(ci_branch)"
    commit="${GIT_COMMIT:-$(git rev-parse HEAD 2>/dev/null || true)}"
    [ -n "$commit" ] || fail "no git checkout here to read the commit from: run it in the checkout, or set GIT_COMMIT."
    # The commit's own time (what DAGSTER_CLOUD_GIT_TIMESTAMP means), not this run's.
    timestamp="$(git log -1 --format=%cd --date=unix "$commit" 2>/dev/null || true)"
    [ -n "$timestamp" ] || fail "git cannot read commit $commit here: fetch it (a shallow clone lacks it)."
    dagster_cloud branch-deployment create-or-update --url "$url" \
        --git-repo-name "$repo" --branch-name "$branch" --commit-hash "$commit" \
        --timestamp "$timestamp" --code-review-id "$pr" --pull-request-status "$status" \
        ${PULL_REQUEST_URL:+--code-review-url "$PULL_REQUEST_URL"} \
        --base-deployment-name "$DEPLOYMENT"
}

command="${1:-}"
[ -n "$command" ] || usage
shift

case "$command" in
    deploy)
        [ $# -eq 2 ] || usage
        pr="$(pr_number "$1")"
        image="$2"
        name="$(create_or_update "$pr" OPEN)"
        if [ "${DAGSTER_BRANCH_CI_DRY_RUN:-}" = "1" ]; then
            echo "$name"
            name="<branch-deployment>"
        fi
        url="$(organization_url)"
        dagster_cloud deployment add-location --url "$url/$name" \
            --deployment "$name" --location-file dagster_cloud.yaml \
            --location-name "$LOCATION" --image "$image"
        ;;
    close)
        [ $# -ge 1 ] && [ $# -le 2 ] || usage
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
        namespace="pr_$(pr_number "$1")"
        url="$(organization_url)"
        # The job runs in the full deployment with its own credentials, and asks the Git host
        # again before removing anything: a PR reopened meanwhile is left alone.
        dagster_cloud job launch --url "$url/$DEPLOYMENT" \
            --deployment "$DEPLOYMENT" --location "$LOCATION" --job "$JOB" \
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
