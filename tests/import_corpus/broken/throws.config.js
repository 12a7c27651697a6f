const apiUrl = process.env.KANRI_TEST_UNSET_API_URL;
if (!apiUrl) {
  throw new Error("API_URL is not set");
}
module.exports = { apps: [] };
