// What web_sdk/build.mjs puts into the bundles (esbuild define); not part of the public API.

/**
 * The screen rule of the published schema, "x-cairn-once-per-screen" in widgets/layout.schema.json:
 * widget type → group, of which a screen shows at most one widget.
 */
declare const CAIRN_ONCE_PER_SCREEN: Readonly<Record<string, string>>;
