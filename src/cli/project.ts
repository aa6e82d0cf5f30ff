// The project a run belongs to: runs/<project>/ in the store and the <project>.dataprep event type. The config's
// project.name, else the GitHub repository's name, else the current folder's, in the characters a store key and an
// event type both accept.
import { basename } from "node:path";

export function projectName(configured: string | null, cwd = process.cwd()): string {
  const fromRepo = process.env.GITHUB_REPOSITORY?.split("/")[1];
  return (configured ?? fromRepo ?? basename(cwd)).toLowerCase().replace(/[^a-z0-9._-]+/g, "-");
}
