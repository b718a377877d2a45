# Helpers shared by the setup component scripts (sourced, not run).
# cached_tool NAME VERSION BUILD_FN: makes $TOOLS/bin/NAME exist, taking it from the
# per-user cache when that version was built before, else running BUILD_FN, which must
# leave the binary at "$OUT".
cached_tool() {
  local name=$1 version=$2 build=$3
  local stamp="$TOOLS/bin/.$name.version"
  if [ -x "$TOOLS/bin/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then
    return 0
  fi
  local cached="$TOOLS_CACHE/$name-$version/$name"
  if [ ! -x "$cached" ]; then
    mkdir -p "$(dirname "$cached")"
    OUT="$cached.tmp" "$build"
    mv -f "$cached.tmp" "$cached"
  fi
  cp -f "$cached" "$TOOLS/bin/$name.tmp" && mv -f "$TOOLS/bin/$name.tmp" "$TOOLS/bin/$name"
  echo "$version" > "$stamp"
}
