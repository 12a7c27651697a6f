// PM2 ecosystem for mysite: the Next.js frontend, the Django API under
// Gunicorn, a task worker and a small mail service.
const BACKEND = "./backend";

module.exports = {
  apps: [
    {
      name: "web",
      cwd: "./frontend",
      script: "node_modules/next/dist/bin/next",
      args: "start -p 3000",
      instances: "max",
      exec_mode: "cluster",
      max_memory_restart: "300M",
      env: {
        NODE_ENV: "production",
        NEXT_TELEMETRY_DISABLED: 1,
      },
      kill_timeout: 5000,
      listen_timeout: 10000,
      log_date_format: "YYYY-MM-DD HH:mm Z",
      merge_logs: true,
    },
    {
      name: "api",
      cwd: BACKEND,
      script: "venv/bin/gunicorn",
      args: "mysite.wsgi:application --bind 127.0.0.1:8000 --workers 3",
      interpreter: "none",
      env: {
        DJANGO_SETTINGS_MODULE: "mysite.settings",
      },
      env_production: {
        DJANGO_DEBUG: "0",
        ALLOWED_HOSTS: "example.com,www.example.com",
      },
      max_restarts: 10,
      min_uptime: "10s",
      exp_backoff_restart_delay: 100,
      out_file: "../logs/api-out.log",
      error_file: "../logs/api-err.log",
    },
    {
      name: "worker",
      cwd: BACKEND,
      script: "manage.py",
      args: ["process_tasks", "--sleep", "5"],
      instances: 2,
      increment_var: "WORKER_SLOT",
      cron_restart: "0 3 * * *",
      max_memory_restart: 209715200,
      watch: ["tasks", "mysite"],
      ignore_watch: ["node_modules", "*.pyc", "media"],
      watch_delay: 1000,
      restart_delay: 3000,
      min_uptime: 2000,
    },
    {
      name: "mailer",
      script: "mailer.js",
      node_args: "--max-old-space-size=256",
      instances: -1,
      autorestart: false,
      env: { PORT: 4000 },
      wait_ready: true,
      vizion: false,
    },
  ],

  deploy: {
    production: {
      user: "deploy",
      host: "203.0.113.10",
      ref: "origin/main",
      repo: "git@example.com:mysite.git",
      path: "/srv/mysite",
    },
  },
};
