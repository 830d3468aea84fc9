// Validates configuration files with OpenClaw's own code, as
// `openclaw config validate --json` does, for many files in one process
// (the CLI takes about two seconds a file). Prints one JSON object a line:
// {"path", "valid", "issues"}.
//
//   node scripts/openclaw-validate.mjs OPENCLAW_PACKAGE_DIR LIST_FILE
//
// LIST_FILE names one configuration file a line. Run it with HOME and
// OPENCLAW_STATE_DIR in a temporary directory: OpenClaw keeps state there.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [packageDir, listFile] = process.argv.slice(2);
const dist = join(packageDir, "dist");
const { createConfigIO } = await import(pathToFileURL(join(dist, "config", "config.js")).href);
// The CLI's last step lives in a module whose name carries a build hash.
let finish = null;
for (const name of readdirSync(dist).filter((name) => name.startsWith("config-cli-validation-"))) {
  const module = await import(pathToFileURL(join(dist, name)).href);
  if (typeof module.finishConfigValidationForCli === "function") {
    finish = module.finishConfigValidationForCli;
    break;
  }
}
if (finish === null) {
  throw new Error("no finishConfigValidationForCli in this OpenClaw");
}
const files = readFileSync(listFile, "utf8").split("\n").filter((line) => line.length > 0);
for (const path of files) {
  let line;
  try {
    const io = createConfigIO({ configPath: path, observe: false });
    const snapshot = await finish(
      await io.readConfigFileSnapshotWithPluginMetadata({ prepareValidation: "strict" }),
    );
    line = {
      path,
      valid: Boolean(snapshot.exists && snapshot.valid),
      issues: (snapshot.issues ?? []).map((issue) => `${issue.path ?? ""}: ${issue.message ?? ""}`),
    };
  } catch (error) {
    line = { path, valid: false, issues: [String(error)] };
  }
  process.stdout.write(JSON.stringify(line) + "\n");
}
process.exit(0);
