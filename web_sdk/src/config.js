// @ts-check
// What init was given, and the versions this SDK reports.

/** @import { InitOptions } from "./cairn" */
/** @typedef {InitOptions & {host: string}} Config  init's options, the host without trailing slashes */

export const VERSION = "0.2.0";
export const SCHEMA_VERSION = 1; // of the layout descriptors this SDK renders

/**
 * The configuration of the current user; null before init. Whatever reads it without checking
 * runs after init.
 * @type {Config}
 */
export let config = /** @type {any} */ (null);

/** @param {Config} next */
export function configure(next) {
  config = next;
}
