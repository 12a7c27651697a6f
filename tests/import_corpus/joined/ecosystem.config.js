// Two fork-mode Next.js instances on 3000 and 3001 (increment_var), and Gunicorn
// on 8000: the layout behind an nginx upstream of 3000/3001.
module.exports = {
  apps: [
    {
      name: "frontend",
      cwd: "frontend",
      script: "npm",
      args: "start",
      instances: 2,
      exec_mode: "fork",
      increment_var: "PORT",
      env: { PORT: 3000, NODE_ENV: "production" },
    },
    {
      name: "django",
      cwd: "backend",
      script: "gunicorn",
      args: ["mysite.wsgi", "-b", "127.0.0.1:8000", "--workers", "2"],
      interpreter: "none",
    },
  ],
};
